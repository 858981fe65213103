"""Prompt checks and prompt options shared by the API and the CLI (torch-free, so the CLI can fail before loading
anything)."""

from __future__ import annotations

from pipeline.prompts import normalise_prompt
from student.generate.errors import OptionError, PromptError


def validate_prompts(prompts: list[str]) -> None:
    """PromptError naming the first prompt that is not a string or is empty after whitespace normalisation."""
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not normalise_prompt(p):
            raise PromptError(f"prompt {i} is empty; describe the object, e.g. 'a red cube'")


# What generation does with a prompt far from every training prompt (`student/generate/reach.py`): warn and generate
# it anyway, or warn and generate its nearest training prompt instead.
FAR_PROMPTS = ("warn", "nearest")


def check_far_prompts(value: str, option: str = "far_prompts") -> str:
    """``value`` when it is one of FAR_PROMPTS, else OptionError naming the choices."""
    if value not in FAR_PROMPTS:
        raise OptionError(f"{option} must be one of {', '.join(FAR_PROMPTS)}, got {value!r}")
    return value
