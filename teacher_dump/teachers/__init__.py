"""Teachers: (prompts, seeds) -> multi-view images with their cameras. See `base.py`."""
