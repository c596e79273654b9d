"""Running a workflow: storages, one process per step, an activator per on-demand step.

The runner owns everything it starts (step processes, storages, the embedded router when no
endpoint is given) and stops it all on :meth:`WorkflowRunner.stop`, even after a failure.
Warm steps are started up front and kept; on-demand steps are started by their activator when
a message waits for them and exit on their own after the idle retention (scale to zero).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack

from zflow import codec, keyexprs
from zflow.dataflow.graph import Graph
from zflow.errors import RuntimeFailure
from zflow.transport.session import EmbeddedRouter, SessionOptions, open_session
from zflow.workflows.compiler import to_graph
from zflow.workflows.files import GLOBAL, BlobStorage
from zflow.workflows.runs import FINAL, RunsStorage
from zflow.workflows.workflow import Workflow

ROOT = Path(__file__).resolve().parent.parent.parent


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Activator:
    """Keeps the messages of a scaled-to-zero step and starts it when one waits."""

    def __init__(self, runner: WorkflowRunner, step: str, retention_s: float):
        self.runner, self.step, self.retention_s = runner, step, retention_s
        g = runner.graph
        self.pending: dict[tuple[str, str, str], tuple[str, bytes, str]] = {}
        self.acked: deque[tuple[str, str, str]] = deque(maxlen=4096)
        self._acked_set: set[tuple[str, str, str]] = set()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cold_starts: list[float] = []
        self._spawned_at: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        s = runner.session
        self._subs = [s.declare_subscriber(inp.upstream.key, lambda smp, p=port: self._on_msg(p, smp))
                      for port, inp in g.nodes[step].inputs.items() if inp.upstream is not None]
        self._q = s.declare_queryable(keyexprs.activator(g.flow, g.instance, step, "pending"), self._on_query)
        self._ack = s.declare_subscriber(keyexprs.activator(g.flow, g.instance, step, "ack"), self._on_ack)
        self._thread = threading.Thread(target=self._loop, name=f"activator-{step}", daemon=True)
        self._thread.start()

    def _on_msg(self, port: str, sample: Any) -> None:
        payload, ctype = sample.payload.to_bytes(), str(sample.encoding)
        value = codec.decode(payload, ctype)
        ident = (port, str(value.get("run")), str(value.get("branch", "")))
        with self._lock:
            if ident not in self._acked_set:
                self.pending[ident] = (port, payload, ctype)
        self._wake.set()

    def _on_query(self, query: Any) -> None:
        with self._lock:
            items = list(self.pending.values())
        query.reply(str(query.key_expr), msgpack.packb(items))

    def _on_ack(self, sample: Any) -> None:
        ident = tuple(msgpack.unpackb(sample.payload.to_bytes()))
        with self._lock:
            self.pending.pop(ident, None)  # type: ignore[arg-type]
            if len(self.acked) == self.acked.maxlen:
                self._acked_set.discard(self.acked[0])
            self.acked.append(ident)  # type: ignore[arg-type]
            self._acked_set.add(ident)  # type: ignore[arg-type]
            if self._spawned_at is not None:
                self.cold_starts.append(time.monotonic() - self._spawned_at)
                self._spawned_at = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            with self._lock:
                waiting = bool(self.pending)
            if waiting and (self.proc is None or self.proc.poll() is not None) and not self._stop.is_set():
                self._spawned_at = time.monotonic()
                self.proc = self.runner.spawn(self.step, ["--activator", "--idle-exit", str(self.retention_s)])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)
        for s in [*self._subs, self._q, self._ack]:
            with contextlib.suppress(Exception):
                s.undeclare()


class WorkflowRunner:
    def __init__(self, wf: Workflow, state_dir: str | Path, connect: list[str] | None = None,
                 site: str = "local", instance: str = "main", max_runs: int | None = None,
                 storage: bool = True, quiet: bool = True):
        self.wf = wf
        self.state_dir = Path(state_dir)
        self.connect = list(connect or [])
        self.site = site
        self.instance = instance
        self.max_runs = max_runs
        self.with_storage = storage
        self.quiet = quiet
        self._stack = contextlib.ExitStack()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.activators: dict[str, Activator] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.finished: list[str] = []
        self._cv = threading.Condition()
        self.graph: Graph
        self.session: Any = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, ready_timeout: float = 30.0) -> WorkflowRunner:
        try:
            self._start(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ready_timeout: float) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.connect:
            router = self._stack.enter_context(EmbeddedRouter())
            self.connect = [router.endpoint]
        self.session = self._stack.enter_context(open_session(SessionOptions(mode="client", connect=self.connect)))
        if self.with_storage:
            runs = RunsStorage(self.session, self.state_dir / "runs", self.wf.name)
            self._stack.callback(runs.close)
        sites = {self.site, GLOBAL} | {s.site for s in self.wf.steps.values() if s.site}
        for site in sorted(sites):
            blobs = BlobStorage(self.session, site, self.state_dir / "blobs" / site)
            self._stack.callback(blobs.close)
        self.graph = self._graph()
        self.graph_file = self.state_dir / f"{self.wf.name}.graph.json"
        self.graph_file.write_text(json.dumps(self.graph.to_dict()), encoding="utf-8")
        sub = self.session.declare_subscriber(keyexprs.run_records(self.wf.name), self._on_record)
        self._stack.callback(sub.undeclare)
        warm = [sid for sid, s in self.wf.steps.items() if sid != self.wf.trigger and s.execution == "warm"]
        for sid in warm:
            self.procs[sid] = self.spawn(sid)
        self._wait_alive(warm, ready_timeout)
        for sid, s in self.wf.steps.items():
            if sid != self.wf.trigger and s.execution == "on-demand":
                self.activators[sid] = Activator(self, sid, s.idle_retention_s)
        self.procs[self.wf.trigger] = self.spawn(self.wf.trigger)

    def _graph(self) -> Graph:
        g = to_graph(self.wf, self.instance, self.site)
        nodes = {}
        for nid, node in g.nodes.items():
            cfg = dict(node.config)
            cfg["cache_dir"] = str(self.state_dir / "cache" / cfg["site"])
            cfg["zenoh_connect"] = list(self.connect)
            if nid == self.wf.trigger and self.max_runs is not None:
                cfg["max_runs"] = self.max_runs
            nodes[nid] = replace(node, config=cfg)
        return replace(g, nodes=nodes)

    def spawn(self, node: str, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "zflow.workflows.host", "--graph", str(self.graph_file), "--node", node]
        for c in self.connect:
            cmd += ["--connect", c]
        out = subprocess.DEVNULL if self.quiet else None
        return subprocess.Popen([*cmd, *(extra or [])], env=_child_env(), stdout=out, stderr=None)

    def _wait_alive(self, nodes: list[str], timeout: float) -> None:
        want = set(nodes)
        deadline = time.monotonic() + timeout
        while want:
            alive = set()
            for reply in self.session.liveliness().get(keyexprs.node_alive(self.wf.name, self.instance, "*"),
                                                       timeout=1.0):
                if reply.ok is not None:
                    alive.add(str(reply.ok.key_expr).rsplit("/", 1)[-1])
            want -= alive
            dead = [n for n in want if self.procs[n].poll() is not None]
            if dead:
                raise RuntimeFailure(f"step process {dead[0]!r} exited before it was ready")
            if want and time.monotonic() > deadline:
                raise RuntimeFailure(f"steps not ready after {timeout:.0f}s: {', '.join(sorted(want))}")
            if want:
                time.sleep(0.05)

    def _on_record(self, sample: Any) -> None:
        record = codec.decode(sample.payload.to_bytes(), str(sample.encoding))
        with self._cv:
            first_final = record["status"] in FINAL and (
                record["run"] not in self.records or self.records[record["run"]]["status"] not in FINAL)
            self.records[record["run"]] = record
            if first_final:
                self.finished.append(record["run"])
            self._cv.notify_all()

    def wait(self, runs: int | None = None, duration: float | None = None, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for ``runs`` finished runs, or ``duration`` seconds, or the trigger to end."""
        start = time.monotonic()
        limit = min(x for x in (duration, timeout, float("inf")) if x is not None)
        trigger = self.procs[self.wf.trigger]
        with self._cv:
            while True:
                if runs is not None and len(self.finished) >= runs:
                    break
                elapsed = time.monotonic() - start
                if elapsed >= limit:
                    if duration is None and runs is not None:
                        raise RuntimeFailure(f"only {len(self.finished)} of {runs} runs finished in {limit:.0f}s")
                    break
                if runs is None and duration is None and trigger.poll() is not None:
                    in_flight = [r for r in self.records.values() if r["status"] not in FINAL]
                    if not in_flight:
                        break
                self._cv.wait(0.1)
            return [self.records[r] for r in self.finished]

    def stop(self) -> None:
        for act in self.activators.values():
            act.close()
        procs = list(self.procs.values()) + [a.proc for a in self.activators.values() if a.proc is not None]
        if self.wf.trigger in self.procs:  # stop the trigger first: no new runs
            procs.remove(self.procs[self.wf.trigger])
            procs.insert(0, self.procs[self.wf.trigger])
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self._stack.close()

    def __enter__(self) -> WorkflowRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
