"""Losing a daemon (issue 8, observation 5), with daemons as real processes on a real router and
``kill -9`` of the daemon process alone (its node hosts get the parent-death signal, as on a
real machine):

- consumers on surviving daemons keep running and receive from the re-placed producer;
- every node of the dead daemon is re-placed, also when all of them were there;
- instance records outlive any daemon (every daemon keeps a replica): ``instance list`` and
  ``status`` tell the truth (running, degraded, failed) with events;
- a returning daemon is fenced by the instance generation: it never resumes moved nodes;
- the built-in timer resumes its tick counter from its checkpoint, other sources are reported
  as restarted from the beginning.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import (
    DaemonProcess,
    daemon_processes,
    in_process_daemons,
    lines,
    logs,
    pipeline,
    wait_until,
    write_operators,
)
from runtime_helpers import graph, node

from zflow.daemon.instance_deploy import (
    create_instance,
    delete_instance,
    find_instance,
    list_instances,
)
from zflow.errors import RuntimeFailure
from zflow.transport.control_client import ControlClient

pytestmark = pytest.mark.timeout(150)


def timer_flow(out: Path, flow: str = "tk", period_ms: float = 50) -> object:
    """The built-in timer (tick numbers) into the built-in JSON-lines sink (appending, so a
    re-placed sink adds to the file). Built-ins need no bundle: any daemon can host them."""
    return graph(flow, [
        node("tick", "source", "timer", builtin=True, outputs=["out"],
             config={"period_ms": period_ms, "payload": "both"}),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["in"], config={"path": str(out), "mode": "a"}),
    ], [("tick", "out", "sink", "in")])


def ticks(out: Path) -> list[int]:
    return [json.loads(line)["tick"] for line in out.read_text().splitlines()] if out.exists() else []


@contextlib.contextmanager
def flowing(router, zsession, tmp_path: Path, g: object, out: Path, instance: str, placement: dict[str, str],
            ids: tuple[str, ...] = ("d1", "d2"), **create: object) -> Iterator[list[DaemonProcess]]:
    """Daemons ``ids`` as processes on the router, the instance created with ``placement``, and
    its first lines out."""
    with daemon_processes([(i, tmp_path / i) for i in ids], [router.endpoint]) as procs:
        create_instance(zsession, g, instance=instance, placement=placement, **create)
        assert wait_until(lambda: lines(out) >= 3), logs(tmp_path)
        yield procs


def flows_again(out: Path, tmp_path: Path, more: int = 5, timeout: float = 30) -> None:
    n = lines(out)
    assert wait_until(lambda: lines(out) >= n + more, timeout), "no new data\n" + logs(tmp_path)


def d1_returns_fenced(router, zsession, procs: list[DaemonProcess], out: Path, tmp_path: Path) -> None:
    """d1 restarts with its stale record: it runs nothing, data still flows, no tick comes twice."""
    back = DaemonProcess("d1", tmp_path / "d1", [router.endpoint])
    procs.append(back)
    back.wait_ready()
    flows_again(out, tmp_path, 10, 20)
    assert ControlClient(zsession).status("d1")["running"] == [], logs(tmp_path)
    got = ticks(out)
    repeated = sorted({t for t in got if got.count(t) > 1})
    assert not repeated, f"ticks received twice: {repeated[:20]}\n{logs(tmp_path)}"
    assert got == sorted(got), "ticks out of order"


def health(zsession, ref: str) -> str:
    return next((i["health"] for i in list_instances(zsession) if ref in (i["instance"], f"{i['flow']}/{i['instance']}")),
                "absent")


def test_consumer_survives_and_replaced_timer_resumes_from_its_checkpoint(router, zsession, tmp_path):
    """Observation 5: timer on d1, sink on d2, kill -9 of d1's daemon. The sink must not take
    its producer's death for an end of stream; the timer is re-placed, resumes its counter, and
    the instance says running; the restarted d1 runs nothing (fenced), so no tick comes twice."""
    out = tmp_path / "out.jsonl"
    placement = {"tick": "d1/default", "sink": "d2/default"}
    with flowing(router, zsession, tmp_path, timer_flow(out), out, "o5", placement) as procs:
        procs[0].kill_daemon_only()
        flows_again(out, tmp_path, 10)
        rec, states, _ = find_instance(zsession, "o5")
        assert rec.placement == {"tick": "d2/default", "sink": "d2/default"}, logs(tmp_path)
        assert states == {"tick": "running", "sink": "running"}, (states, logs(tmp_path))
        assert rec.generation >= 1
        assert wait_until(lambda: health(zsession, "o5") == "running", 10), list_instances(zsession)
        whats = [e["what"] for e in rec.events]
        assert any("node tick re-placed on d2" in w for w in whats), whats
        assert any("source tick resumes from its checkpoint" in w for w in whats), whats

        d1_returns_fenced(router, zsession, procs, out, tmp_path)
        delete_instance(zsession, "o5")


def test_every_node_of_a_dead_daemon_is_replaced_when_all_were_there(router, zsession, tmp_path):
    """All nodes on d1; d2 runs nothing of the instance but holds a replica of its record: the
    instance stays listed, is re-placed on d2 and data flows again."""
    out = tmp_path / "out.jsonl"
    placement = {"tick": "d1/default", "sink": "d1/default"}
    with flowing(router, zsession, tmp_path, timer_flow(out), out, "all1", placement) as procs:
        procs[0].kill_daemon_only()
        assert [i["instance"] for i in list_instances(zsession)] == ["all1"]
        flows_again(out, tmp_path)
        rec, states, _ = find_instance(zsession, "all1")
        assert rec.nodes_on("d2") == ["sink", "tick"] and states == {"tick": "running", "sink": "running"}
        assert wait_until(lambda: health(zsession, "all1") == "running", 10)
        delete_instance(zsession, "all1")
        assert list_instances(zsession) == []


def test_status_tells_degraded_and_failed(router, zsession, tmp_path, cli_env, zflow_cmd):
    """With ``--on-daemon-loss ignore`` the lost nodes stay where they were: the instance is
    degraded while some nodes run, failed once none does, and stays listed though every daemon
    that ran its nodes is gone (d3 only holds a replica)."""
    out = tmp_path / "out.jsonl"
    placement = {"tick": "d1/default", "sink": "d2/default"}
    with flowing(router, zsession, tmp_path, timer_flow(out), out, "h1", placement, ids=("d1", "d2", "d3"),
                 on_daemon_loss="ignore") as procs:
        assert health(zsession, "h1") == "running"
        procs[0].kill_daemon_only()
        assert wait_until(lambda: health(zsession, "h1") == "degraded", 20), (list_instances(zsession), logs(tmp_path))
        procs[1].kill_daemon_only()
        assert wait_until(lambda: health(zsession, "h1") == "failed", 20), (list_instances(zsession), logs(tmp_path))
        lost = lambda: {e.get("daemon") for e in find_instance(zsession, "h1")[0].events  # noqa: E731
                        if e.get("kind") == "daemon-lost"}
        assert wait_until(lambda: lost() == {"d1", "d2"}, 20), logs(tmp_path)
        cli = subprocess.run([*zflow_cmd, "instance", "list", "--connect", router.endpoint], env=cli_env,
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0 and "tk/h1" in cli.stdout and "failed" in cli.stdout, cli
        cli = subprocess.run([*zflow_cmd, "instance", "status", "h1", "--connect", router.endpoint], env=cli_env,
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        assert "health failed" in cli.stdout and "daemon d2 lost" in cli.stdout, cli.stdout
        assert "daemon d1 lost" in cli.stdout
        procs[2].kill()


def test_returning_daemon_learns_the_generation_from_any_replica(router, zsession, tmp_path):
    """d1 (timer) and d2 (sink) both die; the leader d3 re-places everything on itself. d1 comes
    back with its stale record while d2, the only other daemon its record names, is still gone:
    the current generation comes from d3's replica, and d1 runs nothing."""
    out = tmp_path / "out.jsonl"
    placement = {"tick": "d1/default", "sink": "d2/default"}
    with flowing(router, zsession, tmp_path, timer_flow(out), out, "g1", placement, ids=("d1", "d2", "d3")) as procs:
        procs[0].kill_daemon_only()
        procs[1].kill_daemon_only()
        assert wait_until(lambda: find_instance(zsession, "g1")[0].daemons() == {"d3"}, 30), logs(tmp_path)
        flows_again(out, tmp_path)
        d1_returns_fenced(router, zsession, procs, out, tmp_path)


def test_stale_generation_is_refused(router, zsession, tmp_path):
    """Load, start and update messages carry the instance generation; a daemon that knows a
    newer one refuses them (a stale deployer or leader cannot bring back moved nodes)."""
    out = tmp_path / "out.jsonl"
    placement = {"tick": "d1/default", "sink": "d2/default"}
    with flowing(router, zsession, tmp_path, timer_flow(out), out, "s1", placement) as procs:
        first = find_instance(zsession, "s1")[0]
        assert first.generation == 0
        procs[0].kill_daemon_only()
        assert wait_until(lambda: find_instance(zsession, "s1")[0].generation >= 1, 30), logs(tmp_path)
        client = ControlClient(zsession)
        stale = first.to_dict()
        with pytest.raises(RuntimeFailure, match=r"stale generation 0 .* generation [1-9]"):
            client.call("d2", "instances/update", {"record": stale})
        with pytest.raises(RuntimeFailure, match="stale generation 0"):
            client.call("d2", "instances/start", {"flow": "tk", "instance": "s1", "generation": 0})
        with pytest.raises(RuntimeFailure, match="stale generation 0"):
            client.call("d2", "instances/load", {"record": stale})
        assert find_instance(zsession, "s1")[0].placement["tick"] == "d2/default"


def test_source_without_checkpoint_is_reported_restarted(router, zsession, tmp_path):
    """A source that keeps no checkpoint starts over when re-placed: the instance events say so."""
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    placement = {"src": "d1/default", "dbl": "d2/default", "sink": "d2/default"}
    with flowing(router, zsession, tmp_path, pipeline(ops, out), out, "r1", placement) as procs:
        procs[0].kill_daemon_only()
        assert wait_until(lambda: find_instance(zsession, "r1")[0].nodes_on("d2") == ["dbl", "sink", "src"], 30)
        whats = [e["what"] for e in find_instance(zsession, "r1")[0].events]
        assert any("source src restarted from the beginning on d2" in w for w in whats), whats


def test_code_of_a_dead_daemon_is_kept_by_the_others(router, zsession, tmp_path):
    """Every node (Python code shipped as a bundle) on d1; the deployer has left; d2, which runs
    nothing of the instance, kept a copy of the code when the instance was created: when d1
    dies its nodes start on d2."""
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    placement = {"src": "d1/default", "dbl": "d1/default", "sink": "d1/default"}
    with flowing(router, zsession, tmp_path, pipeline(ops, out), out, "b1", placement) as procs:
        assert wait_until(lambda: list((tmp_path / "d2" / "bundles").glob("*/ok")), 20), logs(tmp_path)
        procs[0].kill_daemon_only()
        flows_again(out, tmp_path)
        rec, states, _ = find_instance(zsession, "b1")
        assert rec.nodes_on("d2") == ["dbl", "sink", "src"] and set(states.values()) == {"running"}, logs(tmp_path)


def test_a_record_heard_from_the_storage_never_starts_nodes(router, zsession, tmp_path):
    """A newer record put straight on the records key (a stray or forged put) that moves the timer
    from d1 to d2: d1 stops its timer (fencing: a newer generation is obeyed), but d2 starts
    nothing, since only control requests start nodes; the instance then says degraded."""
    from zflow import codec, keyexprs

    out = tmp_path / "out.jsonl"
    with in_process_daemons(router, tmp_path, "d1", "d2") as (d1, d2):
        create_instance(zsession, timer_flow(out), instance="f1",
                        placement={"tick": "d1/default", "sink": "d1/default"})
        assert wait_until(lambda: lines(out) >= 3)
        heard = find_instance(zsession, "f1")[0]
        heard.placement["tick"] = "d2/default"
        heard.generation += 1
        heard.writer = "zz"
        payload, enc = codec.encode(heard.to_dict())
        zsession.put(keyexprs.instance_record("tk", "f1"), payload, encoding=enc)
        assert wait_until(lambda: {r["node"] for r in d1.status()["running"]} == {"sink"}, 10)
        assert wait_until(lambda: health(zsession, "f1") == "degraded", 10)
        assert d2.status()["running"] == []
        assert d1.records["tk/f1"].generation == d2.records["tk/f1"].generation == 1


def test_replay_resumes_after_the_rows_it_sent(router, zsession, tmp_path):
    """A paced JSON-lines replay on d1 into a sink on d2; d1 is killed mid-file. The replay is
    re-placed, resumes after the rows it had sent (no row twice, in order, to the last one), and
    once the file is done the instance is finished."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"i": i, "t": i * 0.02}) + "\n" for i in range(400)))
    out = tmp_path / "out.jsonl"
    g = graph("rp", [
        node("replay", "source", "jsonl-replay", builtin=True, outputs=["out"],
             config={"path": str(rows), "speed": 1, "time_column": "t"}),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["in"], config={"path": str(out), "mode": "a"}),
    ], [("replay", "out", "sink", "in")])
    with flowing(router, zsession, tmp_path, g, out, "p1", {"replay": "d1/default", "sink": "d2/default"}) as procs:
        procs[0].kill_daemon_only()
        got = lambda: [json.loads(line)["i"] for line in out.read_text().splitlines()]  # noqa: E731
        assert wait_until(lambda: got() and got()[-1] == 399, 60), logs(tmp_path)
        seen = got()
        assert len(seen) == len(set(seen)) and seen == sorted(seen), f"rows twice or out of order\n{logs(tmp_path)}"
        whats = [e["what"] for e in find_instance(zsession, "p1")[0].events]
        assert any("source replay resumes from its checkpoint on d2" in w for w in whats), whats
        assert wait_until(lambda: health(zsession, "p1") == "finished", 20), list_instances(zsession)


def test_a_cut_off_host_resumes_only_while_the_records_still_place_it_there():
    """The data-path fence (zflow/runtime/fence.py): what a host that lost its router decides
    from the replicas' copies of its instance record."""
    from zflow.runtime.fence import Fence, still_current

    fence = Fence("edge-a", 100.0, 1)
    rec = {"created": 100.0, "generation": 1, "revision": 3, "writer": "x", "state": "running",
           "placement": {"src": "edge-a/default", "sink": "edge-b/default"}}
    moved = {**rec, "generation": 2, "revision": 4, "placement": {**rec["placement"], "src": "edge-b/default"}}
    assert still_current(fence, ["src"], []) is None  # nobody answered: ask again
    assert still_current(fence, ["src"], [rec]) is True
    assert still_current(fence, ["src"], [rec, moved]) is False  # the newest copy wins
    assert still_current(fence, ["src"], [{**rec, "generation": 2, "revision": 5}]) is True  # another node moved
    assert still_current(fence, ["src"], [{**rec, "state": "deleted", "revision": 9}]) is False
    assert still_current(fence, ["src"], [{**rec, "created": 200.0}]) is False  # deleted and created again
