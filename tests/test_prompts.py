"""Prompt corpora: normalisation, duplicates, every bad line reported with its number."""

import pytest

from pipeline.prompts import CorpusError, normalise_prompt, parse_corpus, prompt_id, read_corpus


def test_normalise_and_stable_id():
    assert normalise_prompt("  a   red\tcube \n") == "a red cube"
    assert prompt_id("a red cube") == prompt_id(" a  red cube ")
    assert prompt_id("a red cube") != prompt_id("a blue cube")
    assert len(prompt_id("x")) == 16 and int(prompt_id("x"), 16) >= 0
    # sha256("a red cube")[:16], pinned so that ids never drift between releases
    assert prompt_id("a red cube") == "9f967626aad36812"


def test_comments_blank_lines_and_duplicates(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("# header\n\na red cube\na  red cube\n  a blue sphere  \n# end\n", encoding="utf-8")
    corpus = read_corpus(p)
    assert corpus.prompts == ["a red cube", "a blue sphere"]
    assert corpus.duplicates == [(4, "a red cube")]


def test_every_bad_line_is_listed():
    raw = b"a red cube\n\xff\xfe bad\n" + b"x" * 600 + b"\nok prompt\nctrl\x07char\n"
    with pytest.raises(CorpusError) as err:
        parse_corpus(raw, "corpus.txt")
    lines = [b.line for b in err.value.bad_lines]
    assert lines == [2, 3, 5]
    assert "line 2: invalid UTF-8" in str(err.value)
    assert "600 characters" in str(err.value)


def test_empty_corpus_and_missing_file(tmp_path):
    with pytest.raises(CorpusError, match="no prompt"):
        parse_corpus(b"# only a comment\n\n")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_corpus(tmp_path / "nope.txt")
