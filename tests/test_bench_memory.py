"""The benchmark's sampler of other processes' peak memory (Ray workers are not our children)."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.process_memory import ProcessPeakMemory  # noqa: E402


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux procfs")
def test_the_peak_of_a_process_that_is_gone_is_kept():
    # A child touches 200 MB, frees it and sleeps: its high-water mark, not its current size, is reported,
    # and it is still known after the process has exited.
    code = "import time; b = bytearray(200 * 2**20); del b; time.sleep(1.0)"
    with ProcessPeakMemory(Path(sys.executable).name[:15]) as peaks:
        child = subprocess.Popen([sys.executable, "-c", code])
        child.wait()
    assert child.pid in peaks.by_pid
    assert 200 <= peaks.by_pid[child.pid] / 1024 < 400
    assert peaks.max_mb >= 200
    with ProcessPeakMemory("no-such-process-name") as none:
        pass
    assert none.by_pid == {} and none.max_mb == 0
