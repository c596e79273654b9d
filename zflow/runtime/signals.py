"""Stopping long-running commands on SIGINT/SIGTERM without deadlocks.

A signal handler runs on the main thread between two bytecodes; if that thread is inside
``Event.wait`` it holds the event's lock, and a handler calling ``Event.set`` waits for that
lock forever. So the handler only flips a flag, and waiting is polling.
"""

from __future__ import annotations

import signal
import time


class StopSignal:
    """Set by SIGINT/SIGTERM (or :meth:`request`); ``wait`` polls it."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, *_: object) -> None:
        self.requested = True

    def install(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> StopSignal:
        for sig in signals:
            signal.signal(sig, self.request)
        return self

    def is_set(self) -> bool:
        return self.requested

    def wait(self, timeout: float | None = None, poll: float = 0.1) -> bool:
        """Wait until a stop is requested or ``timeout`` passes; returns whether it was requested."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.requested:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(poll, remaining))
            else:
                time.sleep(poll)
        return self.requested


def signal_exit_code(signum: int) -> int:
    """How a process says it was stopped by ``signum`` rather than finished: 128 + the signal."""
    return 128 + int(signum)


def stopping_signal(code: int | None) -> signal.Signals | None:
    """The stop signal (SIGTERM, SIGINT) an exit code says ended the process: killed by it
    (negative code) or stopped cleanly on it (:func:`signal_exit_code`); None otherwise."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        if code in (-sig, signal_exit_code(sig)):
            return sig
    return None
