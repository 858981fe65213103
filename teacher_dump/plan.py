"""The deterministic shard plan of a dump: which (prompt, seed) pairs go into which shard.

Pairs are ordered by (seed, prompt id): every shard holds many prompts, and a dump stopped half-way
already covers every prompt with the first seeds. The order depends only on the set of prompts (not
their order in the corpus), the number of seeds, the seed offset and the shard size, so a rerun
plans the same shard names with the same keys, which is what lets it skip finished shards and still
hold every (prompt, seed) exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.prompts import prompt_id
from pipeline.shards import SHARD_PATTERN, sample_key


@dataclass(frozen=True)
class ShardPlan:
    """One shard to produce: its file name and its (prompt, seed) pairs in order."""

    index: int
    name: str
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sample_key(prompt_id(p), s) for p, s in zip(self.prompts, self.seeds, strict=True))

    def __len__(self) -> int:
        return len(self.prompts)


def plan_shards(
    prompts: Sequence[str], samples_per_prompt: int, shard_size: int, seed_offset: int = 0
) -> list[ShardPlan]:
    """Split every (prompt, seed) with seed in [seed_offset, seed_offset + samples_per_prompt) into shards."""
    if samples_per_prompt < 1 or shard_size < 1 or seed_offset < 0:
        raise ValueError(
            f"need samples_per_prompt >= 1, shard_size >= 1, seed_offset >= 0; "
            f"got {samples_per_prompt}, {shard_size}, {seed_offset}"
        )
    ids = {p: prompt_id(p) for p in prompts}
    if len(set(ids.values())) != len(ids):
        raise ValueError("two prompts share a prompt id (the corpus must be de-duplicated after normalisation)")
    # sample_key rejects seeds that do not fit its six digits; fail here, before any work.
    sample_key("0" * 16, seed_offset + samples_per_prompt - 1)
    pairs = sorted(
        ((p, seed_offset + i) for p in prompts for i in range(samples_per_prompt)), key=lambda ps: (ps[1], ids[ps[0]])
    )
    plans = []
    for index, start in enumerate(range(0, len(pairs), shard_size)):
        chunk = pairs[start : start + shard_size]
        plans.append(
            ShardPlan(
                index=index,
                name=SHARD_PATTERN.format(index=index),
                prompts=tuple(p for p, _ in chunk),
                seeds=tuple(s for _, s in chunk),
            )
        )
    return plans


def plan_digest(plans: Sequence[ShardPlan]) -> str:
    """First 16 hex of sha256 over every shard name and its keys: equal digests, equal plans."""
    h = hashlib.sha256()
    for plan in plans:
        h.update(plan.name.encode())
        for key in plan.keys:
            h.update(b"|" + key.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
