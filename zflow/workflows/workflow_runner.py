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
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import zenoh

from zflow import codec, keyexprs
from zflow.dataflow.graph import Graph
from zflow.errors import Problem, RuntimeFailure, UserError
from zflow.runtime.launcher import FlowRunner, host_env
from zflow.runtime.supervisor import Supervisor, print_prefixed
from zflow.transport.session import EmbeddedRouter, SessionOptions, open_session
from zflow.workflows.files import GLOBAL, BlobStorage
from zflow.workflows.runs import CANCELED, FINAL, RunsStorage
from zflow.workflows.workflow import Workflow
from zflow.workflows.workflow_compiler import to_graph


def _errors_only(name: str, line: str) -> None:
    """Quiet mode still shows what step processes print (tracebacks), not life-cycle events."""
    if not line.startswith("-- ") or "failed" in line:
        print_prefixed(name, line)


def check_runnable(wf: Workflow) -> None:
    """zflow runs python3 actions; other Ryax types validate and compile but cannot run."""
    foreign = [s for s in wf.steps.values() if s.action.spec.type not in ("python3", "python3-cuda")]
    if foreign:
        raise UserError([Problem(f"step {s.id!r}: action {s.action.id!r} is {s.action.spec.type}; zflow runs "
                                 "python3 actions (check and compile accept every Ryax type)",
                                 file=wf.file, line=s.line) for s in foreign])


class Activator:
    """Keeps the messages of a scaled-to-zero step and starts it when one waits."""

    def __init__(self, runner: WorkflowRunner, step: str, retention_s: float):
        self.runner, self.step, self.retention_s = runner, step, retention_s
        g = runner.graph
        self.pending: dict[tuple[str, str, str], tuple[str, bytes, str]] = {}
        self.acked: deque[tuple[str, str, str]] = deque(maxlen=4096)
        self._acked_set: set[tuple[str, str, str]] = set()
        self.child: Any = None
        self.cold_starts: list[float] = []  # seconds from spawn to the first handled message
        self.starts = 0
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
        if sample.kind == zenoh.SampleKind.DELETE:
            return
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
        a, b, c = msgpack.unpackb(sample.payload.to_bytes())
        ident = (str(a), str(b), str(c))
        with self._lock:
            self.pending.pop(ident, None)
            if len(self.acked) == self.acked.maxlen:
                self._acked_set.discard(self.acked[0])
            self.acked.append(ident)
            self._acked_set.add(ident)
            if self._spawned_at is not None:
                self.cold_starts.append(time.monotonic() - self._spawned_at)
                self._spawned_at = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            with self._lock:
                waiting = bool(self.pending)
            if waiting and not self.running and not self._stop.is_set():
                self._spawned_at = time.monotonic()
                self.starts += 1
                self.child = self.runner.spawn(self.step, ["--activator", "--idle-exit", str(self.retention_s)])

    @property
    def running(self) -> bool:
        return self.child is not None and not self.child.final

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
        self.supervisor = Supervisor(log=_errors_only if quiet else print_prefixed)
        self.flow: FlowRunner | None = None
        self.activators: dict[str, Activator] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.finished: list[str] = []
        self.canceled: list[str] = []  # runs in flight when it stopped (ended as Canceled)
        self._cv = threading.Condition()
        self.graph: Graph
        self.session: Any = None
        # Named in its runs' records; its liveliness token (and its storage's lock) tell the
        # readers of those records whether it still lives (zflow.workflows.runs).
        host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40] or "host"
        self.runner_id = f"{host}-{os.getpid()}-{secrets.token_hex(3)}"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, ready_timeout: float = 30.0) -> WorkflowRunner:
        try:
            self._start(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ready_timeout: float) -> None:
        check_runnable(self.wf)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.connect:
            router = self._stack.enter_context(EmbeddedRouter())
            self.connect = [router.endpoint]
        self.session = self._stack.enter_context(open_session(SessionOptions(mode="client", connect=self.connect)))
        token = self.session.liveliness().declare_token(keyexprs.runner_alive(self.wf.name, self.runner_id))
        self._stack.callback(token.undeclare)
        if self.with_storage:
            runs = RunsStorage(self.session, self.state_dir / "runs", self.wf.name, runner=self.runner_id)
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
        # The trigger and warm steps run on the runtime; the start barrier holds the trigger
        # until every warm step subscribes, so the first run is never lost.
        warm = [sid for sid, s in self.wf.steps.items() if sid != self.wf.trigger and s.execution == "warm"]
        self.flow = FlowRunner(self.graph, SessionOptions(mode="client", connect=self.connect),
                               node_ids=[self.wf.trigger, *warm], wait_start=True,
                               supervisor=self.supervisor)
        self.flow.start()
        started = time.monotonic()
        if not self.flow.wait_ready(self.session, timeout=ready_timeout):
            failed = self.flow.failed()
            if failed:  # wait_ready gives up as soon as a step fails: say that, not the timeout
                raise RuntimeFailure(f"workflow step {', '.join(failed)} failed after "
                                     f"{time.monotonic() - started:.1f}s, before every step was ready "
                                     "(see its output above)")
            raise RuntimeFailure(f"workflow steps not ready after {time.monotonic() - started:.0f}s "
                                 f"(the limit is {ready_timeout:g}s)")
        for sid, s in self.wf.steps.items():
            if sid != self.wf.trigger and s.execution == "on-demand":
                self.activators[sid] = Activator(self, sid, s.idle_retention_s)
        self.flow.release(self.session)

    def _graph(self) -> Graph:
        g = to_graph(self.wf, self.instance, self.site)
        nodes = {}
        for nid, node in g.nodes.items():
            cfg = dict(node.config)
            cfg["cache_dir"] = str(self.state_dir / "cache" / cfg["site"])
            cfg["zenoh_connect"] = list(self.connect)
            if nid == self.wf.trigger:
                cfg["runner"] = self.runner_id
                if self.max_runs is not None:
                    cfg["max_runs"] = self.max_runs
            nodes[nid] = replace(node, config=cfg)
        return replace(g, nodes=nodes)

    def spawn(self, node: str, extra: list[str] | None = None) -> Any:
        """Start an on-demand step's host under the supervisor."""
        cmd = [sys.executable, "-m", "zflow.runtime.on_demand", "--graph", str(self.graph_file), "--node", node]
        for c in self.connect:
            cmd += ["--connect", c]
        return self.supervisor.spawn(f"{self.wf.name}/{node}", [*cmd, *(extra or [])], env=host_env())

    def _trigger_state(self) -> Any:
        if self.flow is None:
            return None
        return self.flow.status().get(self.flow.child_name(self.wf.trigger), {}).get("state")

    @property
    def trigger_ended(self) -> bool:
        return self._trigger_state() in ("exited", "failed", "stopped")

    @property
    def trigger_failed(self) -> bool:
        return self._trigger_state() == "failed"

    def _on_record(self, sample: Any) -> None:
        record = codec.decode(sample.payload.to_bytes(), str(sample.encoding))
        with self._cv:
            first_final = record["status"] in FINAL and (
                record["run"] not in self.records or self.records[record["run"]]["status"] not in FINAL)
            self.records[record["run"]] = record
            if first_final:
                self.finished.append(record["run"])
                if len(self.finished) > 100_000:  # a long deployment: keep memory bounded
                    for old in self.finished[:50_000]:
                        self.records.pop(old, None)
                    del self.finished[:50_000]
            self._cv.notify_all()

    def wait(self, runs: int | None = None, duration: float | None = None, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for ``runs`` finished runs, or ``duration`` seconds, or the trigger to end."""
        start = time.monotonic()
        ended_at: float | None = None
        limit = min(x for x in (duration, timeout, float("inf")) if x is not None)
        with self._cv:
            while True:
                if runs is not None and len(self.finished) >= runs:
                    break
                elapsed = time.monotonic() - start
                if elapsed >= limit:
                    if duration is None and runs is not None:
                        raise RuntimeFailure(f"only {len(self.finished)} of {runs} runs finished in {limit:.0f}s")
                    break
                if self.trigger_ended:
                    ended_at = ended_at or time.monotonic()
                    in_flight = [r for r in self.records.values() if r["status"] not in FINAL]
                    if not in_flight and time.monotonic() - ended_at > 1.0:  # nothing more can come
                        if self.trigger_failed:
                            raise RuntimeFailure(f"the trigger {self.wf.trigger!r} failed after "
                                                 f"{len(self.finished)} runs (see its output above)")
                        break
                self._cv.wait(0.1)
            return [self.records[r] for r in self.finished]

    def stop(self) -> None:
        for act in self.activators.values():
            act.close()
        if self.flow is not None:
            self.supervisor.stop(self.flow.child_name(self.wf.trigger))  # first: no new runs
        self.supervisor.stop_all()
        self._cancel_in_flight()
        self._stack.close()

    def _cancel_in_flight(self) -> None:
        """Runs still going when the workflow stops end as Canceled in their records."""
        if self.session is None:
            return
        with self._cv:
            open_runs = [r["run"] for r in self.records.values() if r["status"] not in FINAL]
        self.canceled += open_runs
        for run in open_runs:
            payload, ctype = codec.encode({"workflow": self.wf.name, "run": run, "step": "runner",
                                           "status": CANCELED, "end": time.time(),
                                           "error": "the workflow was stopped"})
            self.session.put(keyexprs.run_event(self.wf.name, run, "runner"), payload, encoding=ctype,
                             congestion_control=zenoh.CongestionControl.BLOCK)
        if open_runs:
            time.sleep(0.2)  # let the storage fold them before it closes

    def __enter__(self) -> WorkflowRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
