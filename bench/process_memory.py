"""Peak resident memory of processes a benchmark does not parent, such as Ray's workers.

`os.wait4` reports the peak of a child process tree only for children that were waited for; Ray's
workers are started by its raylet and killed at shutdown, so their memory is sampled instead: a thread
reads the kernel's own high-water mark (`VmHWM` in /proc/PID/status) of every process whose name
starts with a prefix (Ray names actor processes ``ray::ClassName``) while they live.
"""

from __future__ import annotations

import threading
from pathlib import Path


def _peak_kib(status: Path, prefix: str) -> int | None:
    try:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    except OSError:  # the process ended between listing and reading
        return None
    if not fields.get("Name", "").strip().startswith(prefix) or "VmHWM" not in fields:
        return None
    return int(fields["VmHWM"].split()[0])


class ProcessPeakMemory:
    """``with ProcessPeakMemory("ray::") as peaks: ...``; then ``peaks.max_mb`` and ``peaks.by_pid``."""

    def __init__(self, prefix: str, interval_s: float = 0.2):
        self.prefix, self.interval_s = prefix, interval_s
        self.by_pid: dict[int, int] = {}  # pid -> peak KiB seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for status in Path("/proc").glob("[0-9]*/status"):
            kib = _peak_kib(status, self.prefix)
            if kib is not None:
                pid = int(status.parent.name)
                self.by_pid[pid] = max(kib, self.by_pid.get(pid, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> ProcessPeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def max_mb(self) -> float:
        return max(self.by_pid.values(), default=0) / 1024
