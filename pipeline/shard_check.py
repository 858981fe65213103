"""Validate a shard directory: readable tars, schema v1, shapes, keys, duplicates, counts per prompt.

Every problem is reported with the shard (and sample) it was found in; nothing is skipped silently.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.atomic import TMP_PREFIX
from pipeline.prompts import prompt_id
from pipeline.shard_index import ShardIndexError, read_index
from pipeline.shard_reader import ShardFormatError, decode_sample, iter_tar_groups
from pipeline.shards import META_FIELDS, SCHEMA_VERSION, Manifest, ShardSample, sample_key


@dataclass
class CheckReport:
    directory: str
    num_shards: int = 0
    num_samples: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    samples_per_prompt: dict[str, int] = field(default_factory=dict)
    bad_shards: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        counts = sorted(set(self.samples_per_prompt.values()))
        lines = [
            f"{self.directory}: {self.num_shards} shard(s), {self.num_samples} sample(s), "
            f"{len(self.samples_per_prompt)} prompt(s), samples per prompt {counts}",
        ]
        lines += [f"ERROR {e}" for e in self.errors]
        lines += [f"warning {w}" for w in self.warnings]
        lines.append("OK" if self.ok else f"FAILED: {len(self.errors)} error(s) in {len(self.bad_shards)} shard(s)")
        return "\n".join(lines)


def _schema_errors(s: ShardSample, where: str) -> list[str]:
    errs = []
    missing = [f for f in META_FIELDS if f not in s.meta]
    if missing:
        return [f"{where}: json lacks {', '.join(missing)}"]
    m = s.meta
    if m["schema_version"] != SCHEMA_VERSION:
        errs.append(f"{where}: schema_version {m['schema_version']} (expected {SCHEMA_VERSION})")
    if m["prompt_id"] != prompt_id(s.prompt):
        errs.append(f"{where}: prompt_id {m['prompt_id']} does not match its prompt {s.prompt!r}")
    elif s.key != sample_key(m["prompt_id"], int(m["seed"])):
        errs.append(f"{where}: key does not match prompt_id and seed {m['seed']}")
    # The view count needs no check here: decoding reads json's num_views images and ShardSample refuses
    # cameras or fovy for another number of views.
    if s.views.shape[1] != m["resolution"]:
        errs.append(f"{where}: views are {s.views.shape[1]} px, json says {m['resolution']}")
    if s.emb.shape[0] != m["text_dim"]:
        errs.append(f"{where}: emb has {s.emb.shape[0]} dims, json says {m['text_dim']}")
    for name, arr in (("cameras", s.cameras), ("fovy", s.fovy), ("emb", s.emb)):
        if not np.isfinite(arr).all():
            errs.append(f"{where}: {name} holds NaN or inf")
    if np.isfinite(s.cameras).all():
        rot = s.cameras[:, :3, :3].astype(np.float64)
        ortho = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max()
        if ortho > 1e-4 or np.abs(s.cameras[:, 3] - [0, 0, 0, 1]).max() > 1e-6:
            errs.append(f"{where}: cameras are not rigid cam-to-world matrices (|R R^T - I| = {ortho:.2e})")
    return errs


def check_shards(directory: Path | str, *, expected_samples_per_prompt: int | None = None) -> CheckReport:
    """Validate every shard of `directory` (see module docstring)."""
    d = Path(directory)
    report = CheckReport(str(d))
    if not d.is_dir():
        report.errors.append(f"not a directory: {d}")
        return report
    leftovers = sorted(p.name for p in d.iterdir() if p.name.startswith(TMP_PREFIX))
    if leftovers:
        report.warnings.append(f"temp files of an interrupted write: {', '.join(leftovers)}")
    shards = sorted(p for p in d.glob("*.tar") if not p.name.startswith("."))
    report.num_shards = len(shards)
    if not shards:
        report.errors.append(f"no .tar shards in {d}")
    seen: dict[str, str] = {}
    per_prompt: Counter[str] = Counter()
    keys_of: dict[str, list[str]] = defaultdict(list)
    dims: Counter[tuple] = Counter()
    for shard in shards:
        n_errors = len(report.errors)
        try:
            for key, group in iter_tar_groups(shard):
                where = f"{shard.name}:{key}"
                try:
                    sample = decode_sample(key, group, shard.name)
                except ShardFormatError as e:
                    report.errors.append(str(e))
                    continue
                report.errors.extend(_schema_errors(sample, where))
                if key in seen:
                    report.errors.append(f"duplicate key {key} in {shard.name} and {seen[key]}")
                else:
                    seen[key] = shard.name
                keys_of[shard.name].append(key)
                per_prompt[sample.prompt] += 1
                dims[(sample.meta.get("text_encoder"), sample.meta.get("text_dim"), sample.views.shape)] += 1
                report.num_samples += 1
        except ShardFormatError as e:
            report.errors.append(str(e))
        if len(report.errors) == n_errors:  # a shard already at fault: its index adds nothing
            _check_index(shard, keys_of.get(shard.name, []), report)
        if len(report.errors) > n_errors:
            report.bad_shards.append(shard.name)
    if len(dims) > 1:
        report.errors.append(f"mixed text encoders or view shapes across samples: {dict(dims)}")
    report.samples_per_prompt = dict(per_prompt)
    if expected_samples_per_prompt is not None:
        for prompt, n in sorted(per_prompt.items()):
            if n != expected_samples_per_prompt:
                report.errors.append(f"prompt {prompt!r}: {n} samples, expected {expected_samples_per_prompt}")
    elif len(set(per_prompt.values())) > 1:
        report.warnings.append(f"uneven samples per prompt: {sorted(set(per_prompt.values()))}")
    _check_manifest(d, keys_of, report)
    return report


def _check_index(shard: Path, keys: list[str], report: CheckReport) -> None:
    """The shard's index, where it has one, must be current and list the shard's keys."""
    try:
        index = read_index(shard)
    except ShardIndexError as e:
        report.errors.append(str(e))
        return
    if index is None:
        report.warnings.append(f"{shard.name} has no index (the trainer builds it once; or run with --index)")
    elif index["keys"] != keys:
        report.errors.append(f"the index of {shard.name} lists other keys than the shard holds")


def _check_manifest(d: Path, keys_of: dict[str, list[str]], report: CheckReport) -> None:
    manifest = Manifest(d)
    if not manifest.path.exists():
        report.warnings.append("no manifest.jsonl (shards not written by the dump?)")
        return
    try:
        entries = manifest.entries()
    except ValueError as e:
        report.errors.append(str(e))
        return
    for e in entries:
        name = e["shard"]
        if not (d / name).exists():
            report.errors.append(f"manifest lists {name}, which does not exist")
        elif name in keys_of and sorted(e["keys"]) != sorted(keys_of[name]):
            report.errors.append(f"manifest keys of {name} differ from the shard's")
    listed = {e["shard"] for e in entries}
    unlisted = sorted(set(keys_of) - listed)
    if unlisted:
        report.warnings.append(f"shards not in the manifest: {', '.join(unlisted)}")
