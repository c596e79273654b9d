"""Fault injectors (stall, kill, partition) that count what they did, and the orphan check.

Every process a scenario starts carries ``ZFLOW_FAULT_RUN=<token>`` in its environment (set in
this process before anything is spawned; supervisors, daemons and node hosts pass their
environment on), so what is left after a scenario is found by that token and nothing else: other
people's zflow processes on the same machine are never touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

MARK = "ZFLOW_FAULT_RUN"


def last_pid(directory: Path, node: str, timeout: float = 20.0) -> int:
    """The pid a fault node recorded last (its current host), waiting for it to appear."""
    path = directory / f"{node}.pid"
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().split() if path.exists() else []
        if lines:
            return int(lines[-1])
        if time.monotonic() > deadline:
            raise TimeoutError(f"node {node} never recorded its pid in {path}")
        time.sleep(0.05)


def starts(directory: Path, node: str) -> int:
    """How many times a fault node's host started (one pid line each)."""
    path = directory / f"{node}.pid"
    return len(path.read_text().split()) if path.exists() else 0


class Faults:
    """Injects faults and counts them by kind (``stall``, ``kill``, ``restart``, ``partition``)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self._threads: list[threading.Thread] = []

    def stall(self, pid: int, seconds: float, wait: bool = True) -> None:
        """SIGSTOP the process for ``seconds`` then SIGCONT it (in the background unless ``wait``)."""
        os.kill(pid, signal.SIGSTOP)
        self.count["stall"] += 1

        def resume() -> None:
            time.sleep(seconds)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

        if wait:
            resume()
        else:
            thread = threading.Thread(target=resume, daemon=True)
            thread.start()
            self._threads.append(thread)

    def kill(self, pid: int, what: str = "kill") -> None:
        """SIGKILL one process (a node host, a daemon); ``what`` names the kind counted."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a stalled process dies just the same, but say so
            os.kill(pid, signal.SIGKILL)
        self.count[what] += 1

    def note(self, what: str) -> None:
        """Count a fault injected by other means (a daemon restarted, a link cut)."""
        self.count[what] += 1

    def partition(self, netns: str, link: str, seconds: float) -> None:
        """Cut ``link`` inside namespace ``netns`` for ``seconds`` (processes keep running)."""
        subprocess.run(["ip", "-n", netns, "link", "set", link, "down"], check=True)
        self.count["partition"] += 1
        try:
            time.sleep(seconds)
        finally:
            subprocess.run(["ip", "-n", netns, "link", "set", link, "up"], check=True)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads.clear()


def new_mark() -> str:
    return secrets.token_hex(6)


@contextlib.contextmanager
def marked(token: str | None = None) -> Iterator[str]:
    """Every process spawned inside carries ``ZFLOW_FAULT_RUN=<token>``."""
    token = token or new_mark()
    previous = os.environ.get(MARK)
    os.environ[MARK] = token
    try:
        yield token
    finally:
        if previous is None:
            os.environ.pop(MARK, None)
        else:
            os.environ[MARK] = previous


def marked_processes(token: str) -> list[tuple[int, str]]:
    """Live processes (not zombies, not this one) carrying the token: (pid, command line)."""
    needle = f"{MARK}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if "State:\tZ" in (entry / "status").read_text():
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry.name), cmd))
    return found


def orphans(token: str, grace: float = 10.0) -> list[tuple[int, str]]:
    """What is still running after ``grace`` seconds (children get SIGTERM from the kernel
    when their parent dies, and then need a moment to close their sessions)."""
    deadline = time.monotonic() + grace
    while True:
        left = marked_processes(token)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def reap(token: str) -> list[tuple[int, str]]:
    """SIGKILL whatever carries the token (after :func:`orphans` reported it), so that one
    failed scenario does not leave processes to the next; returns what it killed."""
    left = marked_processes(token)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while marked_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
