"""Evaluation of a trained student: oracle accuracy, geometry, diversity, CLIP metrics and the report."""
