"""Shard schema v1: one WebDataset sample = one teacher generation for one (prompt, seed), V views.

Tar members of a sample ``{key}`` (``key = {prompt_id}_{seed:06d}``, no dots, docs/design.md §Shards):

| member                         | content                                                        |
|--------------------------------|----------------------------------------------------------------|
| ``{key}.txt``                  | the prompt, UTF-8                                              |
| ``{key}.0.png`` ... ``{V-1}``  | the views, RGB uint8 PNG, white background                     |
| ``{key}.cameras.npy``          | float32 (V, 4, 4) cam-to-world at render radius (world z up)   |
| ``{key}.fovy.npy``             | float32 (V,) vertical field of view in degrees                 |
| ``{key}.emb.npy``              | float32 (D,) pooled text embedding                             |
| ``{key}.background.npy``       | float32 (V, 3) background colour of each view in [0, 1] (1.1)  |
| ``{key}.json``                 | schema version (+ minor), prompt_id, seed, teacher + config hash, text encoder + dim, V, resolution |

Schema 1.1 (``schema_minor`` 1 in the json) adds the background member; a 1.0 sample lacks both, and its
readers estimate the background from the views (`pipeline.shard_index.estimate_background`). Beside each
shard the writer puts its index (`shard_index.py`), beside the directory the dump puts `dataset.json`;
`pipeline/dataset.py` reads both. Shards are deterministic tars (sorted members, mtime 0, uid 0), written
atomically and never modified after the rename. Reading lives in `shard_reader.py`, validation in
`shard_check.py`. The member names below are the only spelling of them.
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_write_bytes, atomic_write_json
from pipeline.prompts import prompt_id as compute_prompt_id
from pipeline.shard_index import estimate_background, index_path, shard_index, write_index

SCHEMA_VERSION = 1
SCHEMA_MINOR = 1  # 1.1: the background member; readers accept 1.0 samples
SHARD_PATTERN = "shard-{index:06d}.tar"
MANIFEST_NAME = "manifest.jsonl"
DATASET_INFO = "dataset.json"

# Member suffixes of a sample (the part after ``{key}.``).
TEXT, META, CAMERAS, FOVY, EMB, BACKGROUND = "txt", "json", "cameras.npy", "fovy.npy", "emb.npy", "background.npy"
REQUIRED_MEMBERS = (TEXT, META, CAMERAS, FOVY, EMB)


def view_member(i: int) -> str:
    """The suffix of view i: ``{i}.png``."""
    return f"{i}.png"


META_FIELDS = (
    "schema_version",
    "prompt_id",
    "seed",
    "teacher",
    "teacher_config_hash",
    "text_encoder",
    "text_dim",
    "num_views",
    "resolution",
)


def sample_key(prompt_id: str, seed: int) -> str:
    """``{prompt_id}_{seed:06d}``; WebDataset splits keys at the first dot, so none may contain one."""
    if seed < 0 or seed > 999_999:
        raise ValueError(f"seed must lie in [0, 999999] to fit the key format, got {seed}")
    return f"{prompt_id}_{seed:06d}"


def make_sample_meta(
    prompt: str,
    seed: int,
    *,
    teacher: str,
    teacher_config_hash: str,
    text_encoder: str,
    text_dim: int,
    num_views: int,
    resolution: int,
) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "schema_minor": SCHEMA_MINOR,
        "prompt_id": compute_prompt_id(prompt),
        "seed": int(seed),
        "teacher": teacher,
        "teacher_config_hash": teacher_config_hash,
        "text_encoder": text_encoder,
        "text_dim": int(text_dim),
        "num_views": int(num_views),
        "resolution": int(resolution),
    }


@dataclass(frozen=True)
class ShardSample:
    """One decoded sample.

    views:   (V, H, W, 3) uint8
    cameras: (V, 4, 4) float32
    fovy:    (V,) float32
    emb:     (D,) float32
    background: (V, 3) float32 in [0, 1], the colour around the object in each view; None = estimate it
    view_ids: which of the sample's views `views` holds (a loader may decode only some); None = all, in order
    """

    key: str
    prompt: str
    seed: int
    views: np.ndarray
    cameras: np.ndarray
    fovy: np.ndarray
    emb: np.ndarray
    meta: dict
    background: np.ndarray | None = None
    view_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        v = self.views.shape[0]
        if self.views.dtype != np.uint8 or self.views.ndim != 4 or self.views.shape[-1] != 3:
            raise ValueError(f"{self.key}: views must be uint8 (V, H, W, 3), got {self.views.dtype} {self.views.shape}")
        if self.views.shape[1] != self.views.shape[2]:
            raise ValueError(f"{self.key}: views must be square, got {self.views.shape[1:3]}")
        if self.cameras.shape != (v, 4, 4) or self.cameras.dtype != np.float32:
            raise ValueError(
                f"{self.key}: cameras must be float32 ({v}, 4, 4), got {self.cameras.dtype} {self.cameras.shape}"
            )
        if self.fovy.shape != (v,) or self.fovy.dtype != np.float32:
            raise ValueError(f"{self.key}: fovy must be float32 ({v},), got {self.fovy.dtype} {self.fovy.shape}")
        if self.background is not None and (self.background.shape != (v, 3) or self.background.dtype != np.float32):
            raise ValueError(
                f"{self.key}: background must be float32 ({v}, 3), got {self.background.dtype} {self.background.shape}"
            )
        if self.emb.ndim != 1 or self.emb.dtype != np.float32:
            raise ValueError(f"{self.key}: emb must be float32 (D,), got {self.emb.dtype} {self.emb.shape}")
        if "." in self.key:
            raise ValueError(f"sample keys must not contain dots (WebDataset splits on them): {self.key!r}")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_sample(sample: ShardSample) -> dict[str, bytes]:
    """Member suffix -> bytes for one sample (the suffix follows ``{key}.``)."""
    if sample.view_ids is not None:
        raise ValueError(f"{sample.key}: holds only views {sample.view_ids}; write whole samples")
    background = sample.background if sample.background is not None else estimate_background(sample.views)
    members = {
        TEXT: sample.prompt.encode("utf-8"),
        CAMERAS: _npy_bytes(sample.cameras),
        FOVY: _npy_bytes(sample.fovy),
        EMB: _npy_bytes(sample.emb),
        BACKGROUND: _npy_bytes(background),
        META: json.dumps(sample.meta, sort_keys=True).encode("utf-8"),
    }
    for i, view in enumerate(sample.views):
        members[view_member(i)] = _png_bytes(view)
    return members


def sample_checksum(members: dict[str, bytes]) -> int:
    """CRC-32 over a sample's members (name and bytes, in name order): recorded in the shard's index, checked
    by the loader, so a flipped byte that would still decode is caught too."""
    crc = 0
    for name in sorted(members):
        crc = zlib.crc32(members[name], zlib.crc32(name.encode("utf-8"), crc))
    return crc


def encode_shard_and_index(samples: Sequence[ShardSample]) -> tuple[bytes, dict]:
    """A deterministic tar of the samples (same samples -> same bytes) and its index (`pipeline.shard_index`)."""
    keys = [s.key for s in samples]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate sample keys in one shard: {dup}")
    groups = [encode_sample(sample) for sample in samples]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample, members in zip(samples, groups, strict=True):
            for suffix, data in members.items():
                info = tarfile.TarInfo(f"{sample.key}.{suffix}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    index = shard_index(
        keys=keys,
        prompts=[s.prompt for s in samples],
        emb=[s.emb for s in samples],
        cameras=[s.cameras for s in samples],
        fovy=[s.fovy for s in samples],
        background=[np.load(io.BytesIO(g[BACKGROUND]), allow_pickle=False) for g in groups],
        metas=[s.meta for s in samples],
        checksums=[sample_checksum(g) for g in groups],
        shard_bytes=len(data),
    )
    return data, index


def encode_shard(samples: Sequence[ShardSample]) -> bytes:
    """A deterministic tar of the samples (same samples -> same bytes)."""
    return encode_shard_and_index(samples)[0]


def write_shard(path: Path | str, samples: Sequence[ShardSample]) -> Path:
    """Encode and write one shard and then its index atomically; returns the shard's path."""
    data, index = encode_shard_and_index(samples)
    path = write_shard_bytes(path, data)
    write_index(index_path(path), index)
    return path


def write_shard_bytes(path: Path | str, data: bytes) -> Path:
    """Write an already encoded shard (e.g. made by a remote worker) atomically."""
    path = Path(path)
    if path.suffix != ".tar":
        raise ValueError(f"shard files end in .tar, got {path.name}")
    return atomic_write_bytes(path, data)


def list_shards(directory: Path | str) -> list[Path]:
    """The finished shards of a directory, sorted (temp files of an interrupted write are skipped)."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"shard directory not found: {d}")
    return sorted(p for p in d.glob("*.tar") if not p.name.startswith("."))


class Manifest:
    """The JSON-lines record of finished shards in a shard directory.

    Each line: ``{"shard": name, "keys": [...], "num_samples": n}``. The file is rewritten atomically on
    every record, so it is always complete; a shard is recorded only after its rename.
    """

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_NAME

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path}: line {number} is not JSON ({e.msg})") from e
            if not isinstance(entry, dict) or not {"shard", "keys"} <= entry.keys():
                raise ValueError(f"{self.path}: line {number} lacks 'shard' or 'keys'")
            out.append(entry)
        return out

    def finished(self) -> dict[str, list[str]]:
        """shard name -> its keys, for every recorded shard whose file still exists."""
        return {e["shard"]: list(e["keys"]) for e in self.entries() if (self.directory / e["shard"]).exists()}

    def record(self, shard_name: str, keys: Sequence[str], **extra: object) -> None:
        entries = [e for e in self.entries() if e["shard"] != shard_name]
        entries.append({"shard": shard_name, "keys": list(keys), "num_samples": len(keys), **extra})
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        atomic_write_bytes(self.path, text.encode("utf-8"))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def write_dataset_info(directory: Path | str, info: dict) -> Path:
    """``dataset.json`` beside the shards: the dump's resolved options (teacher, encoder, views, cameras, ...)."""
    return atomic_write_json(Path(directory) / DATASET_INFO, info)


def read_dataset_info(directory: Path | str) -> dict | None:
    """The dump's ``dataset.json``, or None where there is none (shards written by hand)."""
    path = Path(directory) / DATASET_INFO
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from e
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info
