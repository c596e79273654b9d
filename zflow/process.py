"""The one process path: spawning, parent death, stopping on signals, and readiness.

Every ``main()`` of zflow uses it; the supervisor (:mod:`zflow.runtime.supervisor`) adds
restart policy on top of :func:`spawn_child`. A bottom floor (imports only ``settings``) so
that every package, storage servers included, stops the same way.

Stopping without deadlocks: a signal handler runs on the main thread between two bytecodes;
if that thread is inside ``Event.wait`` it holds the event's lock, and a handler calling
``Event.set`` (or anything taking a lock) waits for that lock forever. So the handler only
flips a flag, and waiting is polling.

Readiness is a Zenoh liveliness token the child declares once it serves, never a line of
its log (:func:`wait_alive`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from zflow import settings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Settable(Protocol):
    def is_set(self) -> bool: ...


class StopSignal:
    """Set by SIGINT/SIGTERM (or :meth:`request`); ``wait`` polls it.

    ``also`` is an event another thread may set (a caller's own stop); ``on_request`` runs in
    the handler and must only flip flags (e.g. a hot loop's ``stopping`` attribute)."""

    def __init__(self, also: _Settable | None = None, on_request: Callable[[], None] | None = None) -> None:
        self.requested = False
        self.signum: int | None = None  # the signal that asked, None for a programmatic request
        self.also = also
        self.on_request = on_request

    def request(self, *args: object) -> None:
        self.requested = True
        if args and isinstance(args[0], int):
            self.signum = args[0]
        if self.on_request is not None:
            self.on_request()

    def install(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> StopSignal:
        for sig in signals:
            signal.signal(sig, self.request)
        return self

    @contextlib.contextmanager
    def installed(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[StopSignal]:
        """Handlers for the duration of a block, then the previous ones again (only the main
        thread can install handlers: elsewhere the block runs without them)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in signals}
        self.install(signals)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def is_set(self) -> bool:
        return self.requested or (self.also is not None and self.also.is_set())

    def wait(self, timeout: float | None = None, poll: float = 0.1) -> bool:
        """Wait until a stop is requested or ``timeout`` passes; returns whether it was requested."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(poll, remaining))
            else:
                time.sleep(poll)
        return self.is_set()


# -- parent death ---------------------------------------------------------------------------------
def die_with_parent() -> None:
    """Ask the kernel to SIGTERM us when the process that spawned us dies (Linux
    PR_SET_PDEATHSIG): no orphans, even after kill -9. A child whose parent is already gone
    (it died before this call) exits now."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    parent = settings.parent_pid()
    if parent and os.getppid() != parent:
        raise SystemExit(0)


# -- spawning -------------------------------------------------------------------------------------
def spawn_child(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = subprocess.PIPE,
                stderr: int | IO[Any] | None = subprocess.STDOUT) -> subprocess.Popen[bytes]:
    """A child in its own session (a terminal's Ctrl-C reaches only its owner, which stops it
    in order) that knows its parent, so :func:`die_with_parent` can tie it to us."""
    full = dict(os.environ if env is None else env)
    full[settings.PARENT_PID] = str(os.getpid())
    full.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=full, cwd=cwd,
                            start_new_session=True)


def spawn_detached(argv: Sequence[str], log_file: Path) -> subprocess.Popen[bytes]:
    """A child that outlives this command (``zflow workflow deploy``): its own session, output
    appended to ``log_file``, no parent tie."""
    env = dict(os.environ)
    env.pop(settings.PARENT_PID, None)
    with log_file.open("ab") as log:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)


# -- stopping -------------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def kill_group(pid: int) -> None:
    """SIGKILL a child's whole session (it was spawned as its leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def stop_pid(pid: int, signum: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Ask a process we started to stop (it cleans up on ``signum``), kill it after ``timeout``."""
    if not alive(pid):
        return
    os.kill(pid, signum)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- readiness ------------------------------------------------------------------------------------
def wait_alive(session: Any, key: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until a liveliness token on ``key`` appears (True), ``proc`` exits or ``timeout``
    passes (False). The token is the child's word that it serves, never its log text."""
    seen = threading.Event()  # set from a Zenoh callback thread, never from a signal handler

    def on_token(sample: Any) -> None:
        if str(sample.kind) == "SampleKind.PUT":
            seen.set()

    sub = session.liveliness().declare_subscriber(key, on_token, history=True)
    try:
        deadline = time.monotonic() + timeout
        while not seen.wait(0.05):
            if time.monotonic() >= deadline or (proc is not None and proc.poll() is not None):
                return seen.is_set()
        return True
    finally:
        sub.undeclare()


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
