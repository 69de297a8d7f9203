"""SIGINT and SIGTERM during training: remember them, so the loop saves a checkpoint at a step boundary."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """A context in which SIGINT/SIGTERM set ``received`` (the signal's name) instead of ending the process.

    The previous handlers come back on exit. Outside the main thread, where Python cannot install handlers,
    signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, signal.Handlers | object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for stop_signal in STOP_SIGNALS:
                self._previous[stop_signal] = signal.signal(stop_signal, self._record)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for stop_signal, handler in self._previous.items():
            # A handler installed from C reads back as None; the default is the closest to it.
            signal.signal(stop_signal, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _record(self, number: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(number).name
