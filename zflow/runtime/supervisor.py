"""The one process supervisor: owns every child process, restarts per policy, and stops them all.

Trio-nursery style: a child never outlives its supervisor. Children run in their own session
(so a terminal's Ctrl-C reaches only the supervisor, which then stops them in order) and ask the
kernel to SIGTERM them if the supervisor dies anyway: spawning and parent death are
:mod:`zflow.process`; this module adds restart policy and ordered stops.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Literal

from zflow import settings
from zflow.dataflow.graph import RestartPolicy
from zflow.process import kill_group, spawn_child, stopping_signal

State = Literal["starting", "running", "exited", "failed", "restarting", "stopped"]
LogSink = Callable[[str, str], None]
FinalHook = Callable[["Child"], None]

EXIT_BAD_INPUT = 2

# Children ask the kernel for SIGTERM when their parent goes (PR_SET_PDEATHSIG), and Linux ties
# that to the *thread* that forked them. So every child is forked by this one long-lived thread,
# never by a short-lived one (a Zenoh callback, a restart watcher) whose exit would kill it.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="zflow-spawner")  # a child that says its input is bad is never restarted


def print_prefixed(name: str, line: str) -> None:
    sys.stderr.write(f"[{name}] {line}\n")
    sys.stderr.flush()


@dataclass
class Event:
    time: float
    child: str
    what: str


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    cwd: str | None
    restart: RestartPolicy
    stdin_data: bytes | None
    restart_stdin_data: bytes | None = None
    proc: subprocess.Popen[bytes] | None = None
    state: State = "starting"
    restarts: int = 0
    exit_code: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Kept across the child's restarts, removed when it is final: where a process leaves what
    # its successor needs (a node host: how far each ``block`` input got, ``zflow.runtime.host``).
    state_dir: str = ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def final(self) -> bool:
        return self.done.is_set()


class Supervisor:
    """Spawns, watches, restarts and stops child processes."""

    def __init__(self, log: LogSink | None = print_prefixed, stop_timeout: float = 5.0,
                 on_final: FinalHook | None = None):
        """``on_final(child)`` runs on the watcher thread once a child reaches its final state
        (exited, failed after its restarts, stopped): keep it short."""
        self.log = log
        self.on_final = on_final
        self.stop_timeout = stop_timeout
        self.children: dict[str, Child] = {}
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._changed = threading.Condition()

    # -- spawning -----------------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        restart: RestartPolicy | None = None,
        stdin_data: bytes | None = None,
        restart_stdin_data: bytes | None = None,
    ) -> Child:
        """Start a child; ``restart_stdin_data`` (default: the same) is what a restart reads."""
        with self._lock:
            if name in self.children and not self.children[name].final:
                raise ValueError(f"a child named {name!r} is already running")
            child = Child(name, list(argv), env, cwd, restart or RestartPolicy(), stdin_data,
                          restart_stdin_data)
            self.children[name] = child
        self._start(child)
        threading.Thread(target=self._watch, args=(child,), name=f"watch:{name}", daemon=True).start()
        return child

    def _start(self, child: Child) -> None:
        env = dict(os.environ if child.env is None else child.env)
        if not child.state_dir:
            child.state_dir = tempfile.mkdtemp(prefix="zflow-child-")
        env[settings.CHILD_STATE_DIR] = child.state_dir
        env[settings.RESTARTS] = str(child.restarts)
        child.proc = _SPAWNER.submit(
            spawn_child, child.argv, env=env, cwd=child.cwd,
            stdin=subprocess.PIPE if child.stdin_data is not None else subprocess.DEVNULL,
        ).result()
        if child.stdin_data is not None and child.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                child.proc.stdin.write(child.stdin_data)
            with contextlib.suppress(OSError):
                child.proc.stdin.close()
        child.state = "running"
        self._event(child, f"started (pid {child.proc.pid})")

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            if self.log is not None:
                self.log(name, raw.decode("utf-8", "replace").rstrip("\n"))

    def _watch(self, child: Child) -> None:
        while True:
            proc = child.proc
            assert proc is not None and proc.stdout is not None
            pump = threading.Thread(target=self._pump, args=(child.name, proc.stdout), daemon=True)
            pump.start()
            code = proc.wait()
            pump.join(timeout=2.0)
            if not pump.is_alive():  # a long-lived supervisor must not keep one pipe per finished child
                proc.stdout.close()
            child.exit_code = code
            if self._stopping or child.state == "stopped":
                child.state = "stopped"
                self._event(child, f"stopped (exit {code})")
                break
            by_signal = stopping_signal(code)
            if by_signal is not None:  # stopped from outside (a kill, a dying parent): not finished
                child.state = "stopped"
                self._event(child, f"stopped by {by_signal.name} (exit {code})")
                break
            if code == 0:
                child.state = "exited"
                self._event(child, "exited")
                break
            policy = child.restart
            retry = (
                policy.policy == "on-failure"
                and code != EXIT_BAD_INPUT
                and child.restarts < policy.max_restarts
            )
            if not retry:
                child.state = "failed"
                self._event(child, f"failed (exit {code})" + (
                    f" after {child.restarts} restart(s)" if child.restarts else ""))
                break
            child.restarts += 1
            delay = policy.backoff_s * (2 ** (child.restarts - 1))
            child.state = "restarting"
            self._event(child, f"failed (exit {code}); restart {child.restarts}/{policy.max_restarts} "
                               f"in {delay:.2f}s")
            if self._sleep_unless_stopping(delay):
                child.state = "stopped"
                break
            if child.restart_stdin_data is not None:
                child.stdin_data = child.restart_stdin_data
            with self._lock:  # a stop that came during the backoff must not miss the new process
                if self._stopping or child.state == "stopped":
                    child.state = "stopped"
                    break
                self._start(child)
        if child.state_dir:
            shutil.rmtree(child.state_dir, ignore_errors=True)
        child.done.set()
        with self._changed:
            self._changed.notify_all()
        if self.on_final is not None:
            try:
                self.on_final(child)
            except Exception as exc:  # a hook's bug must not kill the watcher silently
                if self.log is not None:
                    self.log(child.name, f"-- on_final hook failed: {exc!r}")

    def _sleep_unless_stopping(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._stopping:
                return True
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        return self._stopping

    def _event(self, child: Child, what: str) -> None:
        self.events.append(Event(time.time(), child.name, what))
        if self.log is not None:
            self.log(child.name, f"-- {what}")

    # -- waiting and stopping -------------------------------------------------------------------------
    def wait(self, names: Sequence[str] | None = None, timeout: float | None = None) -> bool:
        """Wait until the named children (all by default) are in a final state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                pending = [c for n, c in self.children.items() if (names is None or n in names) and not c.final]
                if not pending:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))

    def any_failed(self) -> list[str]:
        return [n for n, c in self.children.items() if c.state == "failed"]

    def stop(self, name: str, timeout: float | None = None) -> None:
        child = self.children.get(name)
        if child is None:
            return
        with self._lock:
            child.state = "stopped"
        self._terminate([child], timeout)

    def stop_all(self, timeout: float | None = None) -> None:
        with self._lock:
            self._stopping = True
        self._terminate(list(self.children.values()), timeout)

    def _terminate(self, children: list[Child], timeout: float | None) -> None:
        timeout = self.stop_timeout if timeout is None else timeout
        for child in children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._event(child, "did not stop in time; killed")
                kill_group(proc.pid)
                proc.wait()
        for child in children:
            child.done.wait(timeout=2.0)

    def status(self) -> dict[str, dict[str, object]]:
        return {
            n: {"pid": c.pid, "state": c.state, "restarts": c.restarts, "exit_code": c.exit_code}
            for n, c in self.children.items()
        }

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
