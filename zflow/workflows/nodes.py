"""Generic wrapper nodes that run Ryax handlers inside a zflow dataflow.

A message between steps is the run context: ``{"run", "branch", "created", "values"}`` where
``values`` maps ``step.output`` to every upstream output of that run, so any step can read any
ancestor's output (Ryax semantics). Each execution publishes one step event for the run record.
A failed step forwards ``{"run", "failed"}`` so joins downstream never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
import threading
import time
from typing import Any

import zenoh

import zflow
from zflow import codec, keyexprs, settings
from zflow.workflows.action import DynamicOutput, IOType, load_action
from zflow.workflows.files import Blobs, is_blob
from zflow.workflows.handlers import Handler, StepFailure, TriggerService, load_trigger

OUT = "out"
MAX_RECORDED_OUTPUT = 16 * 1024


def new_run_id() -> str:
    """Ryax-like run ids (``WorkflowRun-<ms>-<4 chars>``), safe as a Zenoh key chunk."""
    return f"WorkflowRun-{int(time.time() * 1000)}-{secrets.token_hex(4)}"


def _summarize(value: Any) -> Any:
    """Keep small outputs verbatim in the run record; describe big ones."""
    try:
        size = len(codec.encode(value)[0])
    except TypeError:
        return repr(value)[:200]
    if size <= MAX_RECORDED_OUTPUT:
        return value
    if isinstance(value, list):
        return f"<{len(value)} rows, {size} bytes>"
    return f"<{type(value).__name__}, {size} bytes>"


class _StepBase:
    """What triggers and steps share: config, session, blobs, events."""

    def _setup(self, ctx: Any) -> None:
        cfg = ctx.config
        self.cfg = cfg
        self.workflow: str = cfg["workflow"]
        self.step: str = cfg["step"]
        self.action = load_action(cfg["action_dir"])
        if cfg.get("dynamic_outputs"):
            declared = {o.name for o in self.action.spec.outputs}
            self.action = self.action.with_dynamic_outputs(
                [DynamicOutput(**o) for o in cfg["dynamic_outputs"] if o["name"] not in declared])
        # On a daemon, where it really runs (it may have been re-placed since compile time).
        self.daemon: str | None = settings.daemon_id()
        self.site: str = settings.daemon_site() or cfg.get("site") or "local"
        self.host = socket.gethostname()
        self.children: list[str] = list(cfg.get("children", []))
        self.file_outputs: dict[str, bool] = dict(cfg.get("file_outputs", {}))
        self._own_session: contextlib.ExitStack | None = None
        if cfg.get("zenoh_connect"):  # actions that open their own session (zenoh-subscribe, tsdb-publish)
            os.environ.setdefault(settings.CONNECT, ",".join(cfg["zenoh_connect"]))
        session = getattr(ctx, "session", None)
        if session is None:  # a runtime that does not lend its session: open our own
            from zflow.transport.session import SessionOptions, open_session

            connect = cfg.get("zenoh_connect") or settings.connect()
            self._own_session = contextlib.ExitStack()
            session = self._own_session.enter_context(
                open_session(SessionOptions(mode="client", connect=[c for c in connect if c])))
        self.session = session
        cache = cfg.get("cache_dir") or os.path.join(tempfile.gettempdir(), "zflow-blobs", self.site)
        self.blobs = Blobs(session, self.site, cache)

    def _event(self, run: str, **fields: Any) -> None:
        event = {"workflow": self.workflow, "run": run, "step": self.step, "host": self.host,
                 "site": self.site, **fields}
        if self.daemon:
            event["daemon"] = self.daemon
        if self.cfg.get("runner"):  # the trigger of a `zflow workflow run`: its runs die with it
            event["runner"] = self.cfg["runner"]
        transfers = self.blobs.take_transfers()
        if transfers:
            event["transfers"] = transfers
        payload, ctype = codec.encode(event)
        self.session.put(keyexprs.run_event(self.workflow, run, self.step), payload, encoding=ctype,
                         congestion_control=zenoh.CongestionControl.BLOCK)  # never drop an event

    def _export(self, outputs: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in outputs.items():
            io_ = self.action.output(name)
            if value is not None and io_ is not None and io_.type in (IOType.FILE, IOType.DIRECTORY):
                value = self.blobs.export(value, io_.type.value, self.file_outputs.get(name, False))
            out[name] = value
        return out

    def teardown(self, ctx: Any) -> None:
        del ctx
        with contextlib.suppress(Exception):
            # A query nobody answers is a round trip behind everything this session put: the
            # last run's data and events leave before the runtime closes the session.
            for _ in self.session.get(keyexprs.run_event(self.workflow, "flush", self.step), timeout=2.0):
                pass
        if self._own_session is not None:
            self._own_session.close()


class TriggerNode(_StepBase, zflow.Source):
    """Source node: runs ``ryax_run.py``; each ``create_run`` starts a workflow run."""

    def setup(self, ctx: Any) -> None:
        self._setup(ctx)
        self.plan: dict[str, list[str]] = self.cfg["plan"]
        self.results: dict[str, str] = self.cfg.get("results", {})
        self.max_runs: int | None = self.cfg.get("max_runs")
        self.emitted = 0
        self.run_fn = load_trigger(self.action)

    def run(self, ctx: Any) -> None:
        asyncio.run(self._main(ctx))

    async def _main(self, ctx: Any) -> None:
        done = asyncio.Event()

        async def emit(outputs: dict[str, Any]) -> None:
            if done.is_set():
                return
            t = time.time()
            run = new_run_id()
            exported = self._export(outputs)
            values = {f"{self.step}.{k}": v for k, v in exported.items()}
            self._event(run, status="Success", start=t, end=t, created=t, plan=self.plan,
                        results=self.results, emitted={c: 1 for c in self.children},
                        outputs={k: _summarize(v) for k, v in exported.items()})
            ctx.put(OUT, {"run": run, "branch": "", "created": t, "values": values})
            self.emitted += 1
            if self.max_runs is not None and self.emitted >= self.max_runs:
                done.set()
            await asyncio.sleep(0)

        async def emit_error(message: str) -> None:
            t = time.time()
            run = new_run_id()
            self._event(run, status="Error", start=t, end=t, created=t, plan=self.plan, error=message)

        async def watch_stop() -> None:  # the runtime stopping the flow stops the trigger
            while getattr(ctx, "running", True) and not done.is_set():
                await asyncio.sleep(0.1)
            done.set()

        service = TriggerService(self.action, dict(self.cfg.get("static", {})), emit, emit_error)
        task = asyncio.ensure_future(self.run_fn(service, dict(self.cfg.get("static", {}))))
        waiter = asyncio.ensure_future(done.wait())
        watcher = asyncio.ensure_future(watch_stop())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for t in (task, waiter, watcher):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            raise StepFailure(f"trigger {self.step!r} failed: {type(exc).__name__}: {exc}")


class StepNode(_StepBase, zflow.Operator):
    """Operator/sink node: joins its parents per run, calls ``handle``, forwards the context."""

    def setup(self, ctx: Any) -> None:
        self._setup(ctx)
        self.parents: list[str] = list(self.cfg["parents"])
        self.static: dict[str, Any] = dict(self.cfg.get("static", {}))
        self.refs: dict[str, str] = dict(self.cfg.get("refs", {}))
        self.handler = Handler(self.action, f"ryax_handler_{self.workflow}_{self.step}".replace("-", "_"))
        self.time_limit: float | None = self.cfg.get("time_limit_s")
        self._joins: dict[tuple[str, str], dict[str, Any]] = {}
        self._failed: dict[tuple[str, str], None] = {}  # insertion-ordered, bounded
        self._lock = threading.Lock()

    def on_input(self, port: str, value: Any, ctx: Any) -> None:
        msg = value
        key = (msg["run"], msg.get("branch", ""))
        if len(self.parents) > 1:
            with self._lock:
                if key in self._failed:
                    return  # the run already failed upstream: the other parents' messages are moot
                got = self._joins.setdefault(key, {})
                got[port] = msg
                if msg.get("failed"):
                    self._joins.pop(key, None)
                    self._failed[key] = None
                    while len(self._failed) > 10_000:
                        self._failed.pop(next(iter(self._failed)))
                elif len(got) < len(self.parents):
                    return
                else:
                    self._joins.pop(key, None)
            if msg.get("failed"):
                self._forward(ctx, msg)
                return
            merged: dict[str, Any] = {}
            for m in got.values():
                merged.update(m["values"])
            msg = {**msg, "values": merged}
        elif msg.get("failed"):
            self._forward(ctx, msg)
            return
        self._execute(msg, ctx)

    def _forward(self, ctx: Any, msg: dict[str, Any]) -> None:
        if self.children:
            ctx.put(OUT, {"run": msg["run"], "branch": msg.get("branch", ""), "failed": msg.get("failed")})

    def _inputs(self, values: dict[str, Any]) -> dict[str, Any]:
        inputs = dict(self.static)
        for name, ref in self.refs.items():
            v = values.get(ref)
            inputs[name] = self.blobs.materialize(v) if isinstance(v, dict) and is_blob(v) else v
        return inputs

    def _call(self, inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """Call the handler, within the action's time limit when it has one (Ryax ``time``)."""
        if not self.time_limit:
            return self.handler(inputs)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["ok"] = self.handler(inputs)
            except BaseException as exc:
                box["err"] = exc

        worker = threading.Thread(target=target, name=f"handler:{self.step}", daemon=True)
        worker.start()
        worker.join(self.time_limit)
        if worker.is_alive():  # the thread cannot be killed; the run fails now, the step goes on
            raise StepFailure(f"exceeded its time limit of {self.time_limit:g}s", 504)
        if "err" in box:
            raise box["err"]
        return box["ok"]

    def _execute(self, msg: dict[str, Any], ctx: Any) -> None:
        run, branch = msg["run"], msg.get("branch", "")
        start = time.time()
        try:
            rows, logs = self._call(self._inputs(msg["values"]))
            rows = [self._export(r) for r in rows]
        except StepFailure as exc:
            self._event(run, status="Error", start=start, end=time.time(), branch=branch,
                        error=exc.message, code=exc.code)
            self._forward(ctx, {"run": run, "branch": branch, "failed": self.step})
            return
        except Exception as exc:  # a bug in a file transfer or the wrapper: still only this run fails
            self._event(run, status="Error", start=start, end=time.time(), branch=branch,
                        error=f"{type(exc).__name__}: {exc}", code=500)
            self._forward(ctx, {"run": run, "branch": branch, "failed": self.step})
            return
        end = time.time()
        outputs = rows[0] if len(rows) == 1 else ({"rows": rows} if rows else {})
        self._event(run, status="Success", start=start, end=end, branch=branch, logs=logs or None,
                    emitted={c: len(rows) for c in self.children},
                    outputs={k: _summarize(v) for k, v in outputs.items()})
        if not self.children:
            return
        for k, row in enumerate(rows):
            values = dict(msg["values"])
            values.update({f"{self.step}.{n}": v for n, v in row.items()})
            ctx.put(OUT, {"run": run, "branch": branch if len(rows) == 1 else f"{branch}.{k}",
                          "created": msg.get("created"), "values": values})
