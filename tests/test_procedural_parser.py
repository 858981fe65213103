"""Prompt parsing of the procedural vocabulary: accepted forms, and errors that name the problem."""

from __future__ import annotations

import pytest

from pipeline.procedural import COLOURS, SHAPES, SIZES, PromptError, SceneSpec, UnknownWordsError, parse_prompt
from pipeline.procedural.shapes import SHAPE_GEOMETRY


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a red cube", SceneSpec("red", "cube")),
        ("a large blue sphere", SceneSpec("blue", "sphere", "large")),
        ("small green torus", SceneSpec("green", "torus", "small")),
        ("An ORANGE cone.", SceneSpec("orange", "cone")),
        ("  the   pink  pyramid ", SceneSpec("pink", "pyramid")),
        ("cylinder purple", SceneSpec("purple", "cylinder")),
    ],
)
def test_parses_accepted_forms(prompt: str, expected: SceneSpec) -> None:
    assert parse_prompt(prompt) == expected


def test_canonical_prompt_round_trips_for_every_combination() -> None:
    for colour in COLOURS:
        for shape in SHAPES:
            for size in (None, *SIZES):
                spec = SceneSpec(colour, shape, size)
                assert parse_prompt(spec.prompt) == spec
    assert SceneSpec("orange", "cube").prompt == "an orange cube"
    assert SceneSpec("red", "cube", "large").prompt == "a large red cube"


def test_unknown_words_are_named_in_order() -> None:
    with pytest.raises(UnknownWordsError) as info:
        parse_prompt("a shiny red cube on a table")
    assert info.value.words == ["shiny", "on", "table"]
    assert "'shiny'" in str(info.value) and "'table'" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("a red", "names no shape"),
        ("a cube", "names no colour"),
        ("", "names no colour"),
        ("a red blue cube", "more than one colour: red, blue"),
        ("a red cube sphere", "more than one shape"),
        ("a small large red cube", "more than one size"),
    ],
)
def test_incomplete_or_ambiguous_prompts_fail_clearly(prompt: str, fragment: str) -> None:
    with pytest.raises(PromptError, match=fragment):
        parse_prompt(prompt)


def test_vocabulary_is_complete_and_consistent() -> None:
    assert len(SHAPES) >= 6 and {"cube", "sphere", "cylinder", "cone", "torus", "pyramid"} <= set(SHAPES)
    assert len(COLOURS) >= 8 and "white" not in COLOURS
    assert tuple(SHAPE_GEOMETRY) == SHAPES
    # No colour is near-white (the background) or near-grey (chromaticity undefined when dark).
    for name, rgb in COLOURS.items():
        assert min(rgb) < 0.5, name
        assert max(rgb) - min(rgb) > 0.4, name
    with pytest.raises(PromptError, match="unknown colour"):
        SceneSpec("white", "cube")
