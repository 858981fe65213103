"""Prompt checks shared by the API and the CLI (torch-free, so the CLI can fail before loading anything)."""

from __future__ import annotations

from pipeline.prompts import normalise_prompt
from student.generate.errors import PromptError


def validate_prompts(prompts: list[str]) -> None:
    """PromptError naming the first prompt that is not a string or is empty after whitespace normalisation."""
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not normalise_prompt(p):
            raise PromptError(f"prompt {i} is empty; describe the object, e.g. 'a red cube'")
