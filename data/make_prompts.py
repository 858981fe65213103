"""Write the demo prompt corpora of the procedural teacher into data/prompts/ (deterministic).

- heldout.txt: 8 colour x shape pairs that never appear in training, one per colour along a
  diagonal of the colour x shape table (colour i with shape (i + 3) mod 6), so every colour and every
  shape still appears in training with most partners: the student must compose them.
- demo.txt: the other 40 pairs, "a red cube" style, no size words: the setting docs/student.md §Presets measured
  (8 colours x 6 shapes, 8 pairs held out), which the CPU preset learns in minutes.
- demo_sizes.txt: demo.txt plus each pair with each size word (120 prompts), a harder variant.

Usage: python data/make_prompts.py [--out data/prompts]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.atomic import atomic_write_text
from pipeline.procedural import COLOURS, SHAPES, SIZES, SceneSpec

HELD_OUT_SHIFT = 3


def held_out_pairs() -> list[tuple[str, str]]:
    return [(c, SHAPES[(i + HELD_OUT_SHIFT) % len(SHAPES)]) for i, c in enumerate(COLOURS)]


def train_pairs() -> list[tuple[str, str]]:
    held = set(held_out_pairs())
    return [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in held]


def _write(path: Path, header: str, prompts: list[str]) -> None:
    atomic_write_text(path, "".join(f"# {line}\n" for line in header.splitlines()) + "\n".join(prompts) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "prompts")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    made_by = "written by data/make_prompts.py; do not edit by hand"
    plain = [SceneSpec(c, s).prompt for c, s in train_pairs()]
    sized = plain + [SceneSpec(c, s, size).prompt for c, s in train_pairs() for size in SIZES]
    held = [SceneSpec(c, s).prompt for c, s in held_out_pairs()]
    _write(out / "demo.txt", f"{len(plain)} colour x shape prompts, {made_by}", plain)
    _write(out / "demo_sizes.txt", f"{len(sized)} colour x shape x size prompts, {made_by}", sized)
    _write(out / "heldout.txt", f"{len(held)} held-out colour x shape pairs never in demo*.txt, {made_by}", held)
    print(f"wrote {len(plain)} + {len(sized)} training and {len(held)} held-out prompts to {out}")


if __name__ == "__main__":
    main()
