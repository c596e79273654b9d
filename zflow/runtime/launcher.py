"""Launching a compiled graph: one node-host process per process group, a start barrier, and
waiting for the flow to end.

The barrier is what makes a flow lossless from its first sample: every host declares its
subscribers, then a liveliness token per node; once every token is seen, the start signal is
put and the sources begin. The same mechanism spans daemons (``wait_start=True``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zflow import keyexprs
from zflow.dataflow.graph import Graph, RestartPolicy
from zflow.process import StopSignal
from zflow.runtime.node_host import HostSpec
from zflow.runtime.supervisor import LogSink, Supervisor, print_prefixed
from zflow.transport.session import SessionOptions

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def host_argv() -> list[str]:
    return [sys.executable, "-m", "zflow.runtime.node_host"]


def host_env() -> dict[str, str]:
    """Children import zflow (and ``operators``) from wherever this process did."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


class FlowRunner:
    """Runs some (by default all) nodes of a graph as supervised host processes."""

    def __init__(
        self,
        graph: Graph,
        session: SessionOptions,
        node_ids: Iterable[str] | None = None,
        wait_start: bool = False,
        supervisor: Supervisor | None = None,
        log: LogSink | None = print_prefixed,
        fence: dict[str, Any] | None = None,
    ):
        self.graph = graph
        self.session_opts = session
        self.node_ids = set(graph.nodes) if node_ids is None else set(node_ids)
        self.wait_start = wait_start
        self.supervisor = supervisor or Supervisor(log=log)
        self.children: list[str] = []
        self.fence = fence  # a daemon's hosts: which copy of the nodes they are (runtime/fence.py)

    def groups(self) -> dict[str, list[str]]:
        return {
            g: [n for n in nodes if n in self.node_ids]
            for g, nodes in self.graph.groups().items()
            if any(n in self.node_ids for n in nodes)
        }

    def child_name(self, group: str) -> str:
        return f"{self.graph.flow}/{group}"

    def host_argv(self, nodes: list[str]) -> list[str]:
        """The command running a host for ``nodes`` (a daemon picks a bundle's interpreter)."""
        del nodes
        return host_argv()

    def host_env(self) -> dict[str, str]:
        return host_env()

    def start(self) -> None:
        env = self.host_env()
        for group, nodes in self.groups().items():
            spec = HostSpec(self.graph, nodes, self.session_opts, self.wait_start, self.fence)
            # A restarted host joins a flow that is already running: it must not wait for start.
            restarted = HostSpec(self.graph, nodes, self.session_opts, wait_start=False, fence=self.fence)
            name = self.child_name(group)
            self.supervisor.spawn(name, self.host_argv(nodes), env=env, restart=self._restart_for(nodes),
                                  stdin_data=spec.to_json().encode(),
                                  restart_stdin_data=restarted.to_json().encode())
            self.children.append(name)

    def _restart_for(self, nodes: list[str]) -> RestartPolicy:
        """A shared process restarts when any of its nodes asks to (the most permissive policy)."""
        policies = [self.graph.nodes[n].restart for n in nodes]
        on_failure = [p for p in policies if p.policy == "on-failure"]
        if not on_failure:
            return RestartPolicy()
        return max(on_failure, key=lambda p: p.max_restarts)

    def wait_ready(self, session: Any, timeout: float = 30.0, cancel: StopSignal | threading.Event | None = None) -> bool:
        """Wait until every node of this runner has declared its liveliness token (False on
        timeout, a failed host, or ``cancel`` set, e.g. by Ctrl-C during a slow setup)."""
        expected = set(self.node_ids)
        seen: set[str] = set()
        lock = threading.Condition()
        prefix = keyexprs.node_alive(self.graph.flow, self.graph.instance, "*")

        def on_token(sample: Any) -> None:
            node = keyexprs.parse_node_alive(str(sample.key_expr))
            with lock:
                if node is not None and str(sample.kind) == "SampleKind.PUT":
                    seen.add(node)
                lock.notify_all()

        sub = session.liveliness().declare_subscriber(prefix, on_token, history=True)
        try:
            deadline = time.monotonic() + timeout
            with lock:
                while not expected <= seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self.failed() or (cancel is not None and cancel.is_set()):
                        return False
                    lock.wait(min(0.05, remaining))
            return True
        finally:
            sub.undeclare()

    def release(self, session: Any) -> None:
        """Let hosts started with ``wait_start`` begin."""
        session.put(keyexprs.instance_ctl(self.graph.flow, self.graph.instance, "start"), b"")

    def failed(self) -> list[str]:
        return [n for n in self.supervisor.any_failed() if n in self.children]

    def wait(self, timeout: float | None = None) -> bool:
        return self.supervisor.wait(self.children, timeout)

    def stop(self, timeout: float | None = None) -> None:
        for name in self.children:
            self.supervisor.stop(name, timeout)

    def status(self) -> dict[str, dict[str, object]]:
        all_status = self.supervisor.status()
        return {n: all_status[n] for n in self.children if n in all_status}
