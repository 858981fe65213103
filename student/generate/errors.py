"""Errors generation reports as one line and an exit code; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class GenerationError(Exception):
    """Base class: ``str(err)`` is the one-line message, ``exit_code`` what `et3d-gen` exits with."""

    exit_code = 1


class PromptError(GenerationError):
    """An empty prompt, an unreadable prompts file or inconsistent prompt options."""

    exit_code = 2


class OptionError(GenerationError):
    """An option value out of range (a density level <= 0, a grid the coarse pass cannot split)."""

    exit_code = 2


class OutputPathError(GenerationError):
    """An output path with an unknown suffix, or in a directory that is missing or unwritable."""

    exit_code = 2


class CheckpointError(GenerationError):
    """A checkpoint that is missing, unreadable, corrupt or does not fit its config or text encoder."""

    exit_code = 3


class EmptyMeshError(GenerationError):
    """The generated density has no surface at the chosen level, so there is no mesh to write."""

    exit_code = 4


class PromptTruncatedWarning(UserWarning):
    """A prompt longer than the text encoder takes; only its first tokens condition the generator."""


class PromptOutOfReachWarning(UserWarning):
    """A prompt far from every prompt the checkpoint was trained on (`student/generate/reach.py`)."""
