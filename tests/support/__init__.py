"""Helpers shared by the tests (stand-in data, fields and encoders); no tests live here."""
