"""QA regressions of the runtime: signals, teardown, start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime_helpers import graph, node

from zflow.runtime.run import run_flow

QA = str(Path(__file__).parent / "nodes" / "qa.py")


def _two(sink_attr: str, **config) -> object:
    return graph("qa", [
        node("src", "source", QA, attr="three", outputs=["out"]),
        node("sink", "sink", QA, attr=sink_attr, inputs=["in"], config=config),
    ], [("src", "out", "sink", "in")])


def test_host_signal_handler_takes_no_lock():
    """A SIGTERM landing while the main thread holds an Event's lock must not deadlock the host
    (it did: two signals in a row left orphan hosts stuck in Event.set)."""
    script = textwrap.dedent("""
        import os, signal, time
        from zflow.dataflow.graph import Graph
        from zflow.runtime.host import Host, HostSpec, stop_on_signals
        from zflow.transport.session import SessionOptions
        host = Host(HostSpec(Graph(flow="f", instance="i", nodes={}, links=()), [], SessionOptions()))
        stop_on_signals(host)
        with host.done._cond:  # what the main loop holds inside done.wait()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here
        print("stopping" if host.stopping else "running")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "stopping", out.stderr


@pytest.mark.timeout(60)
def test_a_hung_teardown_does_not_keep_the_flow_alive(monkeypatch):
    monkeypatch.setenv("ZFLOW_TEARDOWN_TIMEOUT", "1")
    lines: list[str] = []
    result = run_flow(_two("TeardownHangs"), log=lambda n, line: lines.append(line))
    assert result.failed == ["qa/sink"] and not result.stopped
    assert any("'sink': teardown did not return within 1s" in line for line in lines)


def test_a_failing_teardown_is_reported_and_fails_the_node():
    lines: list[str] = []
    result = run_flow(_two("TeardownFails"), log=lambda n, line: lines.append(line))
    assert result.failed == ["qa/sink"]
    assert any("RuntimeError: teardown boom" in line for line in lines)
