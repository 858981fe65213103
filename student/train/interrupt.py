"""Turn Ctrl-C and SIGTERM into a request to stop at the next step boundary, so the exit checkpoint is clean.

A second Ctrl-C raises KeyboardInterrupt at once. Handlers can only be installed in the main thread; elsewhere
(e.g. inside a Ray Train worker) the context does nothing and the periodic checkpoints are the safety net.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class GracefulStop:
    def __init__(self) -> None:
        self.requested: str | None = None  # name of the signal that asked to stop
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
