"""Keep freed memory in the training process instead of handing it back to the OS after every step.

glibc's malloc serves each block larger than its mmap threshold (128 KiB at first, adapting up to 32 MiB) with
a fresh mmap and unmaps it on free, and trims the heap top back to the OS. A CPU training step allocates and
frees the same few hundred MB of activations every iteration, so each step faulted in ~50,000 fresh zeroed
pages: ~0.1 s of kernel time per step of the cpu preset at one thread (docs/student.md §Training). With mmap
off and the trim threshold at its maximum the freed blocks stay in the heap and the next step reuses them.
The computation is unchanged; the process keeps its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
MAX_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed memory rather than unmap or trim it. Process-wide; forked DataLoader workers
    inherit it. Returns whether it applied (False off Linux or under another C library, where it does nothing)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # glibc returns 1 on success; musl's stub returns 0.
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, MAX_TRIM_THRESHOLD) == 1
