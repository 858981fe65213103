"""The unseen-wordings set: its words occur in no training corpus, its labels are the vocabulary's, and the
nearest-neighbour baseline and out-of-reach warnings behave as measured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from pipeline.procedural import COLOURS, SHAPES, SIZES
from pipeline.procedural.vocabulary import ARTICLES
from pipeline.prompts import read_corpus
from student.eval.unseen import UnseenSetError, accuracy, nearest_neighbour_labels, read_unseen
from student.generate.reach import REACH_THRESHOLD, TrainingReach
from student.run_layout import TrainingPrompts

PROMPTS = Path(__file__).resolve().parent.parent / "data" / "prompts"
UNSEEN = PROMPTS / "unseen.tsv"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_no_word_of_the_unseen_set_occurs_in_any_training_corpus() -> None:
    unseen = read_unseen(UNSEEN)
    words = set().union(*map(_words, unseen.prompts)) - set(ARTICLES)
    corpora = sorted(PROMPTS.glob("*.txt"))  # demo*.txt, heldout.txt and any phrasings file added later
    assert any(p.name == "demo.txt" for p in corpora)
    for corpus in corpora:
        trained = set().union(*map(_words, read_corpus(corpus).prompts))
        assert not words & trained, f"{corpus.name} holds {sorted(words & trained)}"
    assert not words & (set(COLOURS) | set(SHAPES) | set(SIZES))


def test_the_unseen_set_covers_every_colour_and_shape() -> None:
    unseen = read_unseen(UNSEEN)
    assert len(unseen.prompts) >= 30
    assert {c for c, _ in unseen.targets} == set(COLOURS) and {s for _, s in unseen.targets} == set(SHAPES)


def test_malformed_unseen_files_name_the_line(tmp_path) -> None:
    bad = tmp_path / "u.tsv"
    bad.write_text("# header\na scarlet box\tred\tcube\na mauve box\tmauve\tcube\n")
    with pytest.raises(UnseenSetError, match=r"u.tsv:3: label \('mauve', 'cube'\) outside the vocabulary"):
        read_unseen(bad)
    bad.write_text("a scarlet box red cube\n")
    with pytest.raises(UnseenSetError, match=r"u.tsv:1: want 'prompt<TAB>colour<TAB>shape'"):
        read_unseen(bad)


def test_nearest_neighbour_baseline_takes_the_labels_of_the_closest_training_prompt() -> None:
    train = ["a red cube", "a blue sphere"]
    train_emb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    emb = torch.tensor([[0.2, 0.9, 0.1], [2.0, 0.1, 0.0]])  # near the sphere; near the cube (norm ignored)
    nn = nearest_neighbour_labels(emb, train, train_emb)
    assert [(p, c, s) for p, c, s, _ in nn] == [("a blue sphere", "blue", "sphere"), ("a red cube", "red", "cube")]
    assert nn[0][3] == pytest.approx(0.9 / torch.tensor([0.2, 0.9, 0.1]).norm().item())
    scores = accuracy([(c, s) for _, c, s, _ in nn], [("blue", "cube"), ("red", "cube")])
    assert scores == {"colour": 1.0, "shape": 0.5, "both": 0.5}


def test_minilm_puts_held_out_pairs_within_reach_and_unseen_or_unrelated_prompts_out_of_it() -> None:
    # The measurement behind REACH_THRESHOLD (student/generate/reach.py), with the real encoder.
    from pipeline.text import load_text_encoder

    encoder = load_text_encoder("minilm")
    train = read_corpus(PROMPTS / "demo.txt").prompts
    reach = TrainingReach(TrainingPrompts(train, encoder.encode(train).pooled.float()))
    heldout = read_corpus(PROMPTS / "heldout.txt").prompts
    far = read_unseen(UNSEEN).prompts + ["a teapot", "a red sports car", "an astronaut riding a horse"]
    near = reach.check(heldout, encoder.encode(heldout).pooled.float())
    assert all(not r.far for r in near) and min(r.similarity for r in near) > REACH_THRESHOLD + 0.03
    out = reach.check(far, encoder.encode(far).pooled.float())
    assert all(r.far for r in out), [r.prompt for r in out if not r.far]
    exact = reach.check(["a red cube"], encoder.encode(["a red cube"]).pooled.float())[0]
    assert exact.nearest == "a red cube" and exact.similarity == pytest.approx(1.0, abs=1e-5)
