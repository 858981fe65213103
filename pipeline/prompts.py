"""Prompt corpora: read, validate and identify prompts.

A corpus is a UTF-8 text file with one prompt per line; blank lines and lines starting with ``#`` are
skipped. Whitespace is normalised (stripped, runs collapsed to one space) and a prompt that occurs
twice is kept once and reported. Every bad line (invalid UTF-8, over-long, control characters) is
collected first and the whole corpus is rejected at once, so no work starts on a corpus that would
fail half-way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_PROMPT_CHARS = 512  # far beyond CLIP's 77 tokens; longer lines are almost surely a broken file
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalise_prompt(text: str) -> str:
    """Strip and collapse whitespace runs to a single space. Case is kept: it can matter to a teacher."""
    return _WS.sub(" ", text).strip()


def prompt_id(prompt: str) -> str:
    """Stable 16-hex identifier: the first 16 hex digits of sha256 of the normalised prompt (docs/design.md)."""
    return hashlib.sha256(normalise_prompt(prompt).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CorpusError(ValueError):
    """A corpus with bad lines; `bad_lines` lists every one of them."""

    def __init__(self, path: Path | str, bad_lines: list[BadLine]):
        self.path = str(path)
        self.bad_lines = bad_lines
        listing = "\n".join(f"  {b}" for b in bad_lines)
        super().__init__(f"{path}: {len(bad_lines)} bad line(s), nothing was done:\n{listing}")


@dataclass(frozen=True)
class Corpus:
    """The distinct prompts of a corpus in file order, and the lines dropped as duplicates."""

    path: str
    prompts: list[str]
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (line, prompt) of repeats

    @property
    def prompt_ids(self) -> list[str]:
        return [prompt_id(p) for p in self.prompts]


def parse_corpus(raw: bytes, path: Path | str = "<corpus>") -> Corpus:
    """Parse corpus bytes; raises CorpusError listing every bad line."""
    bad: list[BadLine] = []
    prompts: list[str] = []
    seen: dict[str, int] = {}
    duplicates: list[tuple[int, str]] = []
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            bad.append(BadLine(number, f"invalid UTF-8 at byte {e.start}: {line_bytes[e.start : e.start + 4]!r}"))
            continue
        if line.startswith("\ufeff") and number == 1:
            line = line[1:]  # a byte-order mark some editors write
        text = normalise_prompt(line)
        if not text or text.startswith("#"):
            continue
        if _CONTROL.search(text):
            bad.append(BadLine(number, f"control character in {text[:40]!r}"))
            continue
        if len(text) > MAX_PROMPT_CHARS:
            bad.append(
                BadLine(number, f"prompt of {len(text)} characters (limit {MAX_PROMPT_CHARS}): {text[:40]!r}...")
            )
            continue
        if text in seen:
            duplicates.append((number, text))
            continue
        seen[text] = number
        prompts.append(text)
    if bad:
        raise CorpusError(path, bad)
    if not prompts:
        raise CorpusError(path, [BadLine(0, "the corpus holds no prompt (only blank or # lines)")])
    return Corpus(str(path), prompts, duplicates)


def read_corpus(path: Path | str) -> Corpus:
    """Read and validate a corpus file (see module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prompt corpus not found: {p}")
    return parse_corpus(p.read_bytes(), p)
