"""``zflow run``: one flow on this machine, on an embedded router (or joining one)."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from zflow import keyexprs
from zflow.dataflow.graph import Graph
from zflow.errors import RuntimeFailure, UserError
from zflow.process import StopSignal
from zflow.runtime.launcher import FlowRunner
from zflow.runtime.stats import NodeStats
from zflow.runtime.supervisor import EXIT_BAD_INPUT, LogSink, print_prefixed
from zflow.transport.session import EmbeddedRouter, SessionOptions, open_session


@dataclass
class RunResult:
    graph: Graph
    status: dict[str, dict[str, object]]
    events: list[str] = field(default_factory=list)
    ready_s: float = 0.0
    elapsed_s: float = 0.0
    stopped: bool = False  # by signal or --duration rather than by finishing
    stats: dict[str, NodeStats] = field(default_factory=dict)  # each node's final statistics

    @property
    def drop_lines(self) -> list[str]:
        """One line per input of the flow that dropped messages (``drop_oldest``/``latest``)."""
        return [line for node in sorted(self.stats) for line in self.stats[node].drop_lines()]

    @property
    def failed(self) -> list[str]:
        return [n for n, s in self.status.items() if s["state"] == "failed"]

    @property
    def exit_code(self) -> int:
        """0 ok; 2 when every failed host refused its input (exit 2, e.g. a file with no node); else 1."""
        if not self.failed:
            return 0
        bad_input = all(self.status[n]["exit_code"] == EXIT_BAD_INPUT for n in self.failed)
        return EXIT_BAD_INPUT if bad_input else 1


def run_flow(
    graph: Graph,
    *,
    connect: list[str] | None = None,
    listen: list[str] | None = None,
    router_config: str | None = None,
    duration: float | None = None,
    ready_timeout: float = 30.0,
    log: LogSink | None = print_prefixed,
    stop: threading.Event | None = None,
    on_ready: Any = None,
) -> RunResult:
    """Run a flow until its finite sources finish, ``duration`` passes, or a signal arrives
    (Ctrl-C / SIGTERM, or ``stop`` set by another thread)."""
    stopping = StopSignal(also=stop)
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if connect:
            host_opts = SessionOptions(mode="client", connect=list(connect))
        else:
            router = stack.enter_context(EmbeddedRouter(listen=listen, config_file=router_config))
            host_opts = router.client_options()
        ctl = stack.enter_context(open_session(host_opts))
        stats: dict[str, NodeStats] = {}

        def on_stats(sample: Any) -> None:
            with contextlib.suppress(Exception):  # a malformed reply must not break the run
                got = NodeStats.from_json(sample.payload.to_bytes())
                stats[got.node] = got

        stats_sub = ctl.declare_subscriber(keyexprs.node_stats(graph.flow, graph.instance), on_stats)
        stack.callback(stats_sub.undeclare)
        runner = FlowRunner(graph, host_opts, wait_start=True, log=log)
        stack.callback(runner.supervisor.stop_all)
        stack.enter_context(stopping.installed())
        runner.start()
        if not runner.wait_ready(ctl, timeout=ready_timeout, cancel=stopping):
            runner.supervisor.stop_all()
            if stopping.is_set() and not runner.failed():  # Ctrl-C while the nodes were starting
                return RunResult(graph, runner.status(), [], 0.0, time.monotonic() - t0, stopped=True)
            failed = runner.failed()
            status = runner.status()
            if failed and all(status[n]["exit_code"] == EXIT_BAD_INPUT for n in failed):
                raise UserError(f"node host(s) refused their input: {', '.join(failed)} (see their messages)")
            detail = f"node host(s) failed to start: {', '.join(failed)}" if failed else \
                f"nodes not ready after {ready_timeout:.0f}s"
            raise RuntimeFailure(detail)
        runner.release(ctl)
        ready_s = time.monotonic() - t0
        if on_ready is not None:
            on_ready(ctl)
        deadline = None if duration is None else time.monotonic() + duration
        stopped = False
        while True:
            if runner.wait(timeout=0.1):
                break
            if runner.failed():
                break
            if stopping.is_set() or (deadline is not None and time.monotonic() >= deadline):
                stopped = True
                break
        runner.supervisor.stop_all()
        events = [f"{e.child}: {e.what}" for e in runner.supervisor.events]
        return RunResult(graph, runner.status(), events, ready_s, time.monotonic() - t0, stopped,
                         stats=dict(stats))
