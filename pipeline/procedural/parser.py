"""Prompt -> scene specification for the procedural teacher: "a large blue sphere" -> (blue, sphere, large).

A prompt is a bag of words: at most one article, at most one size word, exactly one colour and
exactly one shape, in any order, case-insensitive, trailing punctuation ignored. Anything else is an
error that names the offending words, so a corpus is rejected before a dump starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.procedural.vocabulary import ARTICLES, COLOURS, SHAPES, SIZES

_PUNCTUATION = re.compile(r"[.,;:!?]+$")


class PromptError(ValueError):
    """A prompt the procedural vocabulary cannot express."""


class UnknownWordsError(PromptError):
    """A prompt with words outside the vocabulary; `words` lists them in prompt order."""

    def __init__(self, prompt: str, words: list[str]):
        self.prompt = prompt
        self.words = words
        super().__init__(
            f"unknown word(s) {', '.join(repr(w) for w in words)} in prompt {prompt!r}; "
            f"known colours: {', '.join(COLOURS)}; shapes: {', '.join(SHAPES)}; sizes: {', '.join(SIZES)}"
        )


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt asks for. `size` is None when the prompt names no size."""

    colour: str
    shape: str
    size: str | None = None

    def __post_init__(self) -> None:
        if self.colour not in COLOURS:
            raise PromptError(f"unknown colour {self.colour!r}; known: {', '.join(COLOURS)}")
        if self.shape not in SHAPES:
            raise PromptError(f"unknown shape {self.shape!r}; known: {', '.join(SHAPES)}")
        if self.size is not None and self.size not in SIZES:
            raise PromptError(f"unknown size {self.size!r}; known: {', '.join(SIZES)}")

    @property
    def size_factor(self) -> float:
        return 1.0 if self.size is None else SIZES[self.size]

    @property
    def prompt(self) -> str:
        """The canonical prompt, e.g. "a large red cube", "an orange torus"."""
        words = [w for w in (self.size, self.colour, self.shape) if w is not None]
        article = "an" if words[0][0] in "aeiou" else "a"
        return " ".join([article, *words])


def _tokens(text: str) -> list[str]:
    return [_PUNCTUATION.sub("", w) for w in text.lower().split() if _PUNCTUATION.sub("", w)]


def parse_prompt(text: str) -> SceneSpec:
    """Parse a prompt such as "a red cube", "A large blue sphere." or "small green torus".

    Raises UnknownWordsError naming every word outside the vocabulary, and PromptError when the colour
    or shape is missing or a slot is filled twice.
    """
    words = _tokens(text)
    unknown = [w for w in words if w not in COLOURS and w not in SHAPES and w not in SIZES and w not in ARTICLES]
    if unknown:
        raise UnknownWordsError(text, unknown)
    slots = {
        "colour": [w for w in words if w in COLOURS],
        "shape": [w for w in words if w in SHAPES],
        "size": [w for w in words if w in SIZES],
        "article": [w for w in words if w in ARTICLES],
    }
    for slot in ("colour", "shape"):
        if not slots[slot]:
            known = ", ".join(COLOURS if slot == "colour" else SHAPES)
            raise PromptError(f"prompt {text!r} names no {slot}; known: {known}")
    for slot, found in slots.items():
        if len(found) > 1:
            raise PromptError(f"prompt {text!r} has more than one {slot}: {', '.join(found)}")
    size = slots["size"][0] if slots["size"] else None
    return SceneSpec(colour=slots["colour"][0], shape=slots["shape"][0], size=size)
