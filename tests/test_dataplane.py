"""Issue 8, data plane: ``block`` loses nothing however long a live consumer stalls, a dead
consumer does not hang its producer, drops are counted exactly, the Zenoh bridge loses nothing.

Real runtime: ``run_flow`` with node-host processes on an embedded router. Consumers are stalled
by a sleeping operator and by SIGSTOP/SIGCONT of their host process, and killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zenoh
from runtime_helpers import graph, node

from zflow import keyexprs
from zflow.dataflow import compile_dict
from zflow.dataflow.graph import QoS
from zflow.runtime.launcher import FlowRunner
from zflow.runtime.local_run import run_flow
from zflow.runtime.stats import NodeStats

NODES = str(Path(__file__).parent / "nodes" / "dataplane.py")
SAFETY_S = 120  # a hang shows as a stopped run, never as a hung test


def _seqs(path: Path) -> list[int]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _flow(tmp_path: Path, n: int, policy: str = "block", queue: int = 8, size: int = 0, **sink):
    q = QoS(queue_size=queue, policy=policy)  # type: ignore[arg-type]
    return graph("dp", [
        node("src", "source", NODES, attr="seq", outputs=["out"], config={"n": n, "size": size}),
        node("sink", "sink", NODES, attr="Record", inputs=["in"], config={"path": str(tmp_path / "out"), **sink}),
    ], [("src", "out", "sink", "in")], qos={("sink", "in"): q})


def _run(g, lines: list[str] | None = None, **kw):
    logs = lines if lines is not None else []
    return run_flow(g, log=lambda name, line: logs.append(f"{name}: {line}"), duration=SAFETY_S, **kw)


@pytest.mark.parametrize(("n", "size", "stall"), [(500, 0, 12.0), (600, 100_000, 6.0)],
                         ids=["12s-stall", "100KB-6s-stall"])
def test_block_loses_nothing_while_a_live_consumer_sleeps(tmp_path, n, size, stall):
    """Old main: 11/500 (or 377/600) arrived, 'closing anyway', and the flow never ended."""
    lines: list[str] = []
    result = _run(_flow(tmp_path, n, size=size, stall=stall), lines)
    assert not result.stopped and result.exit_code == 0, lines
    assert _seqs(tmp_path / "out") == list(range(n))
    assert not any("closing anyway" in line or "is gone" in line for line in lines), lines


def _pid(path: Path, proc_alive: threading.Thread) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline and proc_alive.is_alive(), "the sink never started"
        time.sleep(0.05)
    return int(path.read_text())


def _in_thread(g, lines: list[str]):
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", _run(g, lines)), daemon=True)
    thread.start()
    return thread, box


def test_block_loses_nothing_while_the_consumer_host_is_sigstopped(tmp_path):
    """Old main: the router's queue towards the frozen host stayed full for more than Zenoh's 5 s
    and the link was closed with what was queued on it."""
    lines: list[str] = []
    n = 400
    thread, box = _in_thread(_flow(tmp_path, n, size=100_000), lines)
    pid = _pid(tmp_path / "out.pid", thread)
    while len(_seqs(tmp_path / "out")) < 10:
        time.sleep(0.02)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(7)  # longer than Zenoh's 5 s wait before closing a blocked link; within the lease
    finally:
        os.kill(pid, signal.SIGCONT)
    thread.join(SAFETY_S + 30)
    result = box["result"]
    assert not result.stopped and result.exit_code == 0, lines
    assert _seqs(tmp_path / "out") == list(range(n))


def test_a_consumer_killed_while_stalled_does_not_hang_its_producer(tmp_path, router, zsession):
    """The producer waits for a stalled consumer only while it lives: SIGKILL it, and the producer
    finishes on its own (exit 0) and says why it stopped waiting."""
    lines: list[str] = []
    runner = FlowRunner(_flow(tmp_path, 500, stall=1000), router.client_options(), wait_start=True,
                        log=lambda name, line: lines.append(f"{name}: {line}"))
    try:
        runner.start()
        assert runner.wait_ready(zsession)
        runner.release(zsession)
        while not (tmp_path / "out.pid").exists() or not (tmp_path / "out.pid").read_text():
            time.sleep(0.05)
        time.sleep(2)  # the producer is now waiting for room in the stalled consumer's queue
        os.kill(int((tmp_path / "out.pid").read_text()), signal.SIGKILL)
        assert runner.supervisor.wait(["dp/src"], timeout=60), lines
        assert runner.status()["dp/src"]["state"] == "exited", (runner.status(), lines)
        assert any("consumer sink.in" in line and "is gone" in line for line in lines), lines
    finally:
        runner.supervisor.stop_all()


@pytest.mark.parametrize("policy", ["drop_oldest", "latest"])
def test_drop_counts_equal_what_was_lost(tmp_path, policy):
    lines: list[str] = []
    n = 3000
    result = _run(_flow(tmp_path, n, policy=policy, queue=4, delay=0.003), lines)
    assert result.exit_code == 0 and not result.stopped, lines
    got = _seqs(tmp_path / "out")
    assert got == sorted(got) and got[-1] == n - 1  # never reordered, the newest survives
    lost = n - len(got)
    assert lost > 0
    stats = result.stats["sink"].inputs["in"]
    assert (stats.received, stats.dropped, stats.ended) == (len(got), lost, True)
    assert result.drop_lines == [f"sink.in: dropped {lost:,} of {n:,} ({policy}, queue {4 if policy != 'latest' else 1})"]
    assert any(f"received {len(got)}, dropped {lost}" in line for line in lines), lines
    assert result.stats["src"].outputs == {"out": n}


def test_zflow_run_prints_the_drop_counts(tmp_path, cli_env, zflow_cmd):
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"""
name: drops
sources:
  - {{id: src, operator: "{NODES}:seq", configuration: {{n: 2000}}, outputs: [out]}}
sinks:
  - id: sink
    operator: "{NODES}:Record"
    configuration: {{path: "{tmp_path / 'out'}", delay: 0.003}}
    inputs: {{in: {{source: src/out, qos: {{policy: drop_oldest, queue_size: 4}}}}}}
""")
    proc = subprocess.run([*zflow_cmd, "run", str(flow), "--duration", "120"], capture_output=True,
                          text=True, env=cli_env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lost = 2000 - len(_seqs(tmp_path / "out"))
    assert lost > 0
    assert f"dropped: sink.in: dropped {lost:,} of 2,000 (drop_oldest, queue 4)" in proc.stderr


def test_per_node_statistics_are_queryable_while_the_flow_runs(tmp_path, router, zsession):
    g = graph("live", [
        node("src", "source", NODES, attr="endless", outputs=["out"]),
        node("sink", "sink", NODES, attr="Record", inputs=["in"], config={"path": str(tmp_path / "out")}),
    ], [("src", "out", "sink", "in")], qos={("sink", "in"): QoS(queue_size=4, policy="drop_oldest")})
    stop = threading.Event()
    got: dict[str, NodeStats] = {}

    def on_ready(_session) -> None:
        while len(_seqs(tmp_path / "out")) < 20:
            time.sleep(0.02)
        for reply in zsession.get(keyexprs.node_stats("live", g.instance), timeout=5):
            flow, instance, nid = keyexprs.parse_node_stats(str(reply.ok.key_expr))
            assert (flow, instance) == ("live", g.instance)
            got[nid] = NodeStats.from_json(reply.ok.payload.to_bytes())
        stop.set()

    result = run_flow(g, connect=[router.endpoint], log=None, stop=stop, on_ready=on_ready, duration=SAFETY_S)
    assert result.stopped and set(got) == {"src", "sink"}
    assert got["src"].outputs["out"] >= 20 and not got["src"].final
    sink = got["sink"].inputs["in"]
    assert (sink.policy, sink.queue_size) == ("drop_oldest", 4)
    assert sink.received >= 20 and sink.depth is not None and not sink.ended


# ---- the Zenoh-Flow bridge ---------------------------------------------------------------------------
SEQ = struct.Struct("<q")


def _bridge():
    return compile_dict({
        "name": "bridge",
        "sources": [{"id": "zin", "zenoh-subscribers": {"in": "dp/in"}}],
        "sinks": [{"id": "zout", "zenoh-publishers": {"out": "dp/out"}}],
        "links": [{"from": {"node": "zin", "output": "in"}, "to": {"node": "zout", "input": "out"}}],
    }, base_dir=str(Path(__file__).parent), source_file="bridge.yaml")


def test_the_zenoh_bridge_loses_nothing_under_block_with_a_stalling_subscriber(router):
    """Old main: the bridge's publisher used Zenoh's default DROP: while the external subscriber
    stalled, whole ranges vanished, and nothing was logged."""
    from zflow.transport import open_session

    n, size = 600, 65536
    seen: list[int] = []
    done = threading.Event()
    stop = threading.Event()
    with open_session(router.client_options()) as pub_session, \
            open_session(router.client_options()) as sub_session:
        sub = sub_session.declare_subscriber("dp/out", zenoh.handlers.FifoChannel(16))

        def consume() -> None:  # stalls 3 s early on: the bridge must wait for it
            while len(seen) < n:
                try:
                    sample = sub.recv()
                except zenoh.ZError:
                    return
                seen.append(SEQ.unpack_from(sample.payload.to_bytes())[0])
                if len(seen) == 20:
                    time.sleep(3)
            done.set()

        threading.Thread(target=consume, daemon=True).start()

        def on_ready(_session) -> None:
            pub = pub_session.declare_publisher("dp/in", congestion_control=zenoh.CongestionControl.BLOCK,
                                                reliability=zenoh.Reliability.RELIABLE)
            body = bytes(size - SEQ.size)
            for i in range(n):
                pub.put(SEQ.pack(i) + body)
            threading.Thread(target=lambda: (done.wait(60), stop.set()), daemon=True).start()

        result = run_flow(_bridge(), connect=[router.endpoint], log=None, stop=stop, on_ready=on_ready,
                          duration=SAFETY_S)
    assert done.is_set(), f"{len(seen)} of {n} arrived; missing from {sorted(set(range(n)) - set(seen))[:5]}"
    assert seen == list(range(n))
    assert result.exit_code == 0


def test_bridge_benchmark_runs_and_reports_a_ratio():
    """benchmarks/bridge.py is one command printing the bridge next to hand-written relays."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "bridge.py"), "--quick", "--n", "2000"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ratio zflow / hand-written" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.strip().startswith(("hand-written", "zflow bridge"))]
    assert len(rows) == 2 and all(re.search(r" 2,000 +0 +[\d,]+ +0$", r) for r in rows), proc.stdout  # none lost
