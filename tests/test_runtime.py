"""The runtime on a real embedded Zenoh router, with real node-host processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import zenoh
from runtime_helpers import graph, node

from zflow import codec
from zflow.dataflow.graph import QoS, RestartPolicy
from zflow.runtime.local_run import run_flow

NODES = str(Path(__file__).parent / "nodes" / "basic.py")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _pipeline(tmp_path: Path, n: int = 200, group: str | None = None, **sink_cfg):
    return graph("pipe", [
        node("src", "source", NODES, attr="count", outputs=["out"], config={"n": n}, group=group),
        node("dbl", "operator", NODES, attr="double", inputs=["in"], outputs=["out"], group=group),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"],
             config={"path": str(tmp_path / "out.jsonl"), **sink_cfg}, group=group),
    ], [("src", "out", "dbl", "in"), ("dbl", "out", "sink", "in")])


def test_process_per_node_flow_delivers_everything_in_order(tmp_path):
    result = run_flow(_pipeline(tmp_path, n=500), log=None)
    assert result.exit_code == 0 and not result.stopped
    assert set(result.status) == {"pipe/src", "pipe/dbl", "pipe/sink"}
    assert [r["i"] for r in _rows(tmp_path / "out.jsonl")] == [2 * i for i in range(500)]


def test_shared_process_group_uses_one_host_and_in_memory_links(tmp_path):
    result = run_flow(_pipeline(tmp_path, n=300, group="all"), log=None)
    assert list(result.status) == ["pipe/all"]
    assert result.exit_code == 0
    assert [r["i"] for r in _rows(tmp_path / "out.jsonl")] == [2 * i for i in range(300)]


def test_a_link_typed_bytes_at_both_ends_delivers_payloads_and_metadata_as_sent(tmp_path):
    g = graph("blob", [
        node("src", "source", NODES, attr="blobs", outputs=["out"], config={"n": 30}),
        node("desc", "operator", NODES, attr="describe", inputs=["in"], outputs=["out"]),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"], config={"path": str(tmp_path / "out.jsonl")},
             group="desc"),
    ], [("src", "out", "desc", "in"), ("desc", "out", "sink", "in")])
    src, desc = g.nodes["src"], g.nodes["desc"]
    g = replace(g, nodes={**g.nodes,
                          "src": replace(src, outputs={"out": replace(src.outputs["out"], type="bytes")}),
                          "desc": replace(desc, inputs={"in": replace(desc.inputs["in"], type="bytes")})})
    assert run_flow(g, log=None).exit_code == 0
    assert _rows(tmp_path / "out.jsonl") == [
        {"type": "bytes", "hex": (i.to_bytes(4, "little") * 3).hex(), "meta": {} if i % 3 else {"i": i}}
        for i in range(30)
    ]


@pytest.mark.parametrize("group", [None, "all"])
def test_plain_zenoh_subscriber_taps_the_documented_key(tmp_path, router, zsession, group):
    """Any link can be tapped at zflow/data/{flow}/{instance}/{node}/{output}, even in-memory ones."""
    tapped: list[dict] = []
    done = threading.Event()

    def on_sample(sample):
        if sample.kind == zenoh.SampleKind.DELETE:  # end of stream
            done.set()
            return
        tapped.append(codec.decode(sample.payload.to_bytes(), str(sample.encoding)))

    g = graph("pipe", [
        node("src", "source", NODES, attr="slow_count", outputs=["out"], config={"n": 30, "period": 0.01},
             group=group),
        node("dbl", "operator", NODES, attr="double", inputs=["in"], outputs=["out"], group=group),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"],
             config={"path": str(tmp_path / "out.jsonl")}, group=group),
    ], [("src", "out", "dbl", "in"), ("dbl", "out", "sink", "in")])
    sub = zsession.declare_subscriber("zflow/data/pipe/*/dbl/out", on_sample)
    try:
        result = run_flow(g, connect=[router.endpoint], log=None)
        assert done.wait(5)
    finally:
        sub.undeclare()
    assert result.exit_code == 0
    assert [r["i"] for r in tapped] == [2 * i for i in range(30)]


def _qos_flow(tmp_path: Path, policy: str, n: int, delay: float):
    q = QoS(queue_size=4, policy=policy)  # type: ignore[arg-type]
    return graph("qos", [
        node("src", "source", NODES, attr="burst", outputs=["out"], config={"n": n}),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"],
             config={"path": str(tmp_path / "out.jsonl"), "delay": delay}),
    ], [("src", "out", "sink", "in")], qos={("sink", "in"): q})


def test_block_policy_slows_the_producer_and_loses_nothing(tmp_path):
    result = run_flow(_qos_flow(tmp_path, "block", n=400, delay=0.002), log=None)
    assert result.exit_code == 0
    assert [r["i"] for r in _rows(tmp_path / "out.jsonl")] == list(range(400))


@pytest.mark.parametrize("policy", ["drop_oldest", "latest"])
def test_drop_policies_drop_under_a_slow_sink_but_keep_the_newest(tmp_path, policy):
    result = run_flow(_qos_flow(tmp_path, policy, n=3000, delay=0.005), log=None)
    assert result.exit_code == 0
    got = [r["i"] for r in _rows(tmp_path / "out.jsonl")]
    assert 0 < len(got) < 3000
    assert got == sorted(got)  # dropping never reorders
    assert got[-1] == 2999  # the newest value survives (a ring drops the oldest)


def test_crashing_node_is_restarted_per_policy_and_reported(tmp_path):
    g = graph("crash", [
        node("src", "source", NODES, attr="slow_count", outputs=["out"], config={"n": 40, "period": 0.05}),
        node("op", "operator", NODES, attr="crash_once", inputs=["in"], outputs=["out"],
             config={"marker": str(tmp_path / "crashed")},
             restart=RestartPolicy("on-failure", max_restarts=2, backoff_s=0.1)),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"], config={"path": str(tmp_path / "out.jsonl")}),
    ], [("src", "out", "op", "in"), ("op", "out", "sink", "in")])
    result = run_flow(g, log=None)
    assert result.exit_code == 0
    assert result.status["crash/op"]["restarts"] == 1
    assert any("crash/op: failed (exit 1); restart 1/2" in e for e in result.events)
    got = [r["i"] for r in _rows(tmp_path / "out.jsonl")]
    assert got and got[-1] == 39  # the flow carried on to the end after the restart


def test_crash_without_restart_fails_the_flow(tmp_path):
    g = graph("crash", [
        node("src", "source", NODES, attr="slow_count", outputs=["out"], config={"n": 1000, "period": 0.01}),
        node("op", "operator", NODES, attr="crash_once", inputs=["in"], outputs=["out"],
             config={"marker": str(tmp_path / "crashed")}),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"], config={"path": str(tmp_path / "o.jsonl")}),
    ], [("src", "out", "op", "in"), ("op", "out", "sink", "in")])
    result = run_flow(g, log=None)
    assert result.exit_code == 1
    assert result.failed == ["crash/op"]
    assert all(s["state"] in ("failed", "stopped", "exited") for s in result.status.values())


def _children_of(pid: int) -> list[int]:
    """Processes whose environment names ``pid`` as their zflow supervisor."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"ZFLOW_PARENT_PID={pid}".encode() in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def _forever(tmp_path: Path):
    return graph("forever", [
        node("src", "source", NODES, attr="forever", outputs=["out"]),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"], config={"path": str(tmp_path / "o.jsonl")}),
    ], [("src", "out", "sink", "in")])


@contextlib.contextmanager
def _running_forever(tmp_path: Path, cli_env, zflow_cmd):
    """``zflow run`` of an endless two-node flow, yielded once data reaches the sink."""
    gfile = tmp_path / "graph.json"
    gfile.write_text(json.dumps(_forever(tmp_path).to_dict()))
    proc = subprocess.Popen([*zflow_cmd, "run", str(gfile)], env=cli_env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "o.jsonl").exists() or not (tmp_path / "o.jsonl").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while [p for p in pids if Path(f"/proc/{p}").exists()]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_flow_and_leaves_no_child(tmp_path, cli_env, zflow_cmd, sig):
    with _running_forever(tmp_path, cli_env, zflow_cmd) as proc:
        children = _children_of(proc.pid)
        assert len(children) == 2
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
        assert "stopped" in proc.stderr.read()
        assert _gone(children)


def test_children_die_when_the_supervisor_is_killed(tmp_path, cli_env, zflow_cmd):
    with _running_forever(tmp_path, cli_env, zflow_cmd) as proc:
        children = _children_of(proc.pid)
        assert children
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _gone(children)


def test_duration_stops_an_endless_flow(tmp_path):
    result = run_flow(_forever(tmp_path), duration=1.0, log=None)
    assert result.stopped and result.exit_code == 0
    assert _rows(tmp_path / "o.jsonl")


def test_a_missing_operator_file_is_a_clear_startup_failure(tmp_path):
    from zflow.errors import UserError

    g = graph("bad", [
        node("src", "source", str(tmp_path / "nope.py"), outputs=["out"]),
        node("sink", "sink", NODES, attr="Collect", inputs=["in"], config={"path": str(tmp_path / "o.jsonl")}),
    ], [("src", "out", "sink", "in")])
    lines: list[str] = []
    with pytest.raises(UserError, match="bad/src"):
        run_flow(g, log=lambda name, line: lines.append(f"{name}: {line}"), ready_timeout=20)
    assert any("nope.py: operator file not found" in line for line in lines)
    assert not any("Traceback" in line for line in lines)


def test_consumers_send_end_of_stream_receipts_that_producers_wait_for(tmp_path, router, zsession):
    """A producer host closes only after every remote consumer has received its end of stream."""
    receipts: list[str] = []
    sub = zsession.declare_subscriber("zflow/eos/pipe/**", lambda s: receipts.append(str(s.key_expr)))
    try:
        result = run_flow(_pipeline(tmp_path, n=50), connect=[router.endpoint], log=None)
    finally:
        sub.undeclare()
    assert result.exit_code == 0
    assert sorted(k.split("/", 4)[4] for k in receipts if not k.endswith(("/credit", "/replay"))) == \
        ["dbl/out/sink/in", "src/out/dbl/in"]
    assert len(_rows(tmp_path / "out.jsonl")) == 50
