"""Helpers for daemon tests: operator files written per test, and daemons as real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from runtime_helpers import graph, node

ROOT = Path(__file__).resolve().parent.parent

OPERATORS = '''
import json
import zflow


@zflow.source
def ticks(ctx):
    i = 0
    while ctx.sleep(float(ctx.config.get("period", 0.05))):
        yield {"i": i}
        i += 1


@zflow.operator
def double(value, ctx):
    return {**value, "i": value["i"] * 2}


class Collect(zflow.Sink):
    def setup(self, ctx):
        import sys
        self.file = open(ctx.config["path"], "a")
        self.prefix = sys.prefix

    def on_input(self, port, value, ctx):
        self.file.write(json.dumps({**value, "prefix": self.prefix}) + "\\n")
        self.file.flush()

    def teardown(self, ctx):
        self.file.close()
'''


def write_operators(root: Path, requirements: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nodes.py").write_text(OPERATORS)
    if requirements is not None:
        (root / "requirements.txt").write_text(requirements)
    return root / "nodes.py"


def pipeline(ops: Path, out: Path, flow: str = "pipe", deploy: dict[str, dict[str, Any]] | None = None,
             period: float = 0.05) -> Any:
    g = graph(flow, [
        node("src", "source", str(ops), attr="ticks", outputs=["out"], config={"period": period}),
        node("dbl", "operator", str(ops), attr="double", inputs=["in"], outputs=["out"]),
        node("sink", "sink", str(ops), attr="Collect", inputs=["in"], config={"path": str(out)}),
    ], [("src", "out", "dbl", "in"), ("dbl", "out", "sink", "in")])
    nodes = dict(g.nodes)
    for nid, hints in (deploy or {}).items():
        nodes[nid] = replace(nodes[nid], deploy=hints)
    return replace(g, nodes=nodes)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def logs(tmp: Path) -> str:
    """The tail of every daemon log under ``tmp`` (``<tmp>/<id>/daemon.log``), for failure messages."""
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(tmp.glob("*/daemon.log")))


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class DaemonProcess:
    """``zflow daemon run`` as a child process; killed (group) on close."""

    def __init__(self, daemon_id: str, data_dir: Path, connect: list[str], *extra: str,
                 prefix: list[str] | None = None):
        ready = data_dir / "ready"
        data_dir.mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        self.log = open(data_dir / "daemon.log", "ab")  # noqa: SIM115
        argv = [*(prefix or []), sys.executable, "-m", "zflow", "daemon", "run", "--id", daemon_id,
                "--data-dir", str(data_dir), "--ready-file", str(ready),
                *[a for c in connect for a in ("--connect", c)], *extra]
        self.proc = subprocess.Popen(argv, env=env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.ready = ready
        self.id = daemon_id

    def wait_ready(self, timeout: float = 20.0) -> None:
        if not wait_until(lambda: self.ready.exists() or self.proc.poll() is not None, timeout):
            raise TimeoutError(f"daemon {self.id} not ready")
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon {self.id} exited with {self.proc.returncode}")

    def kill(self) -> None:
        """SIGKILL the daemon; its node hosts should follow (parent-death signal). Any that has
        not after a grace period is killed too, so a test never leaves a process behind."""
        hosts = children_of(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(5)
        wait_until(lambda: not [h for h in hosts if _alive(h)], 5.0)
        for h in hosts:
            if _alive(h):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(h, signal.SIGKILL)
        self.log.close()

    def kill_daemon_only(self) -> None:
        """``kill -9`` of the daemon process alone, as a person would: its node hosts get the
        parent-death signal (SIGTERM) and stop on their own; any still there after a grace
        period is killed, so a test never leaves a process behind."""
        hosts = children_of(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(5)
        if not wait_until(lambda: not [h for h in hosts if _alive(h)], 10.0):
            for h in hosts:
                if _alive(h):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(h, signal.SIGKILL)
        self.log.close()

    def terminate(self, timeout: float = 10.0) -> int | None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


@contextlib.contextmanager
def daemon_processes(specs: list[tuple[str, Path]], connect: list[str], *extra: str,
                     sequential: bool = False) -> Iterator[list[DaemonProcess]]:
    """Daemons as processes, killed at the end; ``sequential`` starts each once the previous is ready."""
    procs: list[DaemonProcess] = []
    try:
        for daemon_id, data_dir in specs:
            procs.append(DaemonProcess(daemon_id, data_dir, connect, *extra))
            if sequential:
                procs[-1].wait_ready()
        for p in procs:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.kill()


@contextlib.contextmanager
def in_process_daemons(router: Any, tmp: Path, *ids: str, per_daemon: dict[str, dict[str, Any]] | None = None,
                       **cfg: Any) -> Iterator[list[Any]]:
    """Daemons in this process; ``per_daemon`` adds config for some ids (e.g. their site)."""
    from zflow.daemon.config import DaemonConfig
    from zflow.daemon.server import Daemon

    with contextlib.ExitStack() as stack:
        out = []
        for i in ids:
            conf = DaemonConfig(id=i, data_dir=str(tmp / i), zenoh={"connect": [router.endpoint]},
                                **{**cfg, **(per_daemon or {}).get(i, {})})
            out.append(stack.enter_context(Daemon(conf, echo=False)))
        yield out
