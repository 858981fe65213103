"""Shared test setup: offline hubs, quiet Ray, the `slow` and `gpu` markers, the MVDream golden data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"  # MVDream golden data, docs/mvdream.md §Golden data


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--runslow") or os.environ.get("ET3D_SLOW") == "1"
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow or ET3D_SLOW=1")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"the MVDream golden data is missing: {GOLDEN} (it is tracked in git; restore it)")
    return GOLDEN


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a whole module (`support.student_data.one_torch_thread`); a module takes it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`, so it wraps the module's other fixtures too."""
    from support.student_data import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def shards(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of procedural shards per module (`support.student_data.make_procedural_shards`); a module may
    set `SHARD_SEEDS` to change the samples per prompt."""
    from support.student_data import make_procedural_shards

    seeds = getattr(request.module, "SHARD_SEEDS", 4)
    return make_procedural_shards(tmp_path_factory.mktemp("shards"), seeds=seeds)
