"""Instances across daemons on a real router: placement without a mapping, the cross-daemon
barrier, all-or-nothing create, re-placement when a daemon dies, resume after a restart."""

from __future__ import annotations

import pytest
from daemon_helpers import (
    daemon_processes,
    in_process_daemons,
    lines,
    logs,
    pipeline,
    wait_until,
    write_operators,
)

from zflow.daemon.config import DaemonConfig
from zflow.daemon.instance_deploy import (
    create_instance,
    delete_instance,
    find_instance,
    list_instances,
    stop_instance,
)
from zflow.daemon.server import Daemon
from zflow.errors import RuntimeFailure, UserError
from zflow.transport.control_client import ControlClient

pytestmark = pytest.mark.timeout(90)


def test_flow_spans_two_daemons_without_a_mapping(router, zsession, tmp_path):
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    with in_process_daemons(router, tmp_path, "d1", "d2") as (d1, d2):
        rec = create_instance(zsession, pipeline(ops, out), instance="i1", policy="spread")
        assert {p.split("/")[0] for p in rec.placement.values()} == {"d1", "d2"}
        assert wait_until(lambda: lines(out) >= 5)
        found, states, daemons = find_instance(zsession, "i1")
        assert found.state == "running" and daemons == ["d1", "d2"]
        assert states == {"src": "running", "dbl": "running", "sink": "running"}
        assert [i["instance"] for i in list_instances(zsession)] == ["i1"]
        running = {r["node"] for r in d1.status()["running"] + d2.status()["running"]}
        assert running == {"src", "dbl", "sink"}
        stop_instance(zsession, "pipe/i1")
        assert find_instance(zsession, "i1")[0].state == "stopped"
        delete_instance(zsession, "i1")
        assert list_instances(zsession) == []
        assert d1.status()["running"] == [] and d2.status()["running"] == []


def test_deploy_hints_pin_nodes_and_capacity_is_accounted(router, zsession, tmp_path):
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    hints = {"dbl": {"daemon": "d2", "resources": {"cpu": 1.5}}}
    with in_process_daemons(router, tmp_path, "d1", "d2", cpus=2.0) as (_d1, d2):
        rec = create_instance(zsession, pipeline(ops, out, deploy=hints), instance="i2")
        assert rec.placement["dbl"] == "d2/default"
        assert d2.status()["pools"][0]["cpu"] == pytest.approx(0.5)
        hints = {"dbl": {"daemon": "d2", "resources": {"cpu": 1.0}}}
        with pytest.raises(UserError, match=r"node 'dbl' cannot be placed: .*d2/default: needs 1 CPU, 0.5 free"):
            create_instance(zsession, pipeline(ops, tmp_path / "o2", flow="other", deploy=hints))


def test_create_is_all_or_nothing(router, zsession, tmp_path):
    """d2 cannot install the sink's requirement: d1, which loaded fine, is rolled back."""
    ops = write_operators(tmp_path / "ops")
    bad = write_operators(tmp_path / "bad", requirements="./no-such-package.whl\n")
    g = pipeline(ops, tmp_path / "out.jsonl", deploy={"src": {"daemon": "d1"}, "dbl": {"daemon": "d1"},
                                                       "sink": {"daemon": "d2"}})
    from dataclasses import replace

    sink = g.nodes["sink"]
    g = replace(g, nodes={**g.nodes, "sink": replace(sink, run=replace(sink.run, target=str(bad)))})
    with in_process_daemons(router, tmp_path, "d1", "d2") as (d1, d2):
        with pytest.raises(RuntimeFailure, match=r"not created \(rolled back on d1\).*installing requirements"):
            create_instance(zsession, g, instance="i3")
        assert d1.records == {} and d2.records == {}
        assert d1.status()["running"] == []
        assert list_instances(zsession) == []


def test_restarted_daemon_resumes_its_instances(router, zsession, tmp_path):
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    with in_process_daemons(router, tmp_path, "d1"):
        create_instance(zsession, pipeline(ops, out), instance="i4")
        assert wait_until(lambda: lines(out) >= 3)
    before = lines(out)
    with in_process_daemons(router, tmp_path, "d1") as (d1,):
        assert wait_until(lambda: lines(out) >= before + 3)
        assert {r["node"] for r in d1.status()["running"]} == {"src", "dbl", "sink"}
        delete_instance(zsession, "i4")


@pytest.mark.parametrize("order", ["together", "d2-first"])
def test_lost_daemon_nodes_are_replaced_and_data_flows_again(router, zsession, tmp_path, order):
    """``d2-first``: the leader (d1) starts watching after d2's token exists and must still see it go."""
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    specs = [("d1", tmp_path / "d1"), ("d2", tmp_path / "d2")]
    if order == "d2-first":
        specs.reverse()
    with daemon_processes(specs, [router.endpoint], sequential=order == "d2-first") as procs:
        rec = create_instance(zsession, pipeline(ops, out), instance="i5", policy="spread")
        assert wait_until(lambda: lines(out) >= 3)
        victim = rec.placement["dbl"].split("/")[0]
        next(p for p in procs if p.id == victim).kill()
        survivor = "d1" if victim == "d2" else "d2"
        n = lines(out)
        assert wait_until(lambda: lines(out) >= n + 5, 20), "no data after the daemon loss\n" + logs(tmp_path)
        found, states, _ = find_instance(zsession, "i5")
        assert found.placement["dbl"] == f"{survivor}/default", logs(tmp_path)
        assert states["dbl"] == "running", (states, logs(tmp_path))
        assert any(f"daemon {victim} lost; node dbl re-placed on {survivor}" in e["what"] for e in found.events)
        assert ControlClient(zsession).alive() == [survivor]


def test_on_daemon_loss_stop_stops_the_instance(router, zsession, tmp_path):
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    specs = [("d1", tmp_path / "d1"), ("d2", tmp_path / "d2")]
    hints = {"src": {"daemon": "d1"}, "dbl": {"daemon": "d2"}, "sink": {"daemon": "d1"}}
    with daemon_processes(specs, [router.endpoint]) as procs:
        create_instance(zsession, pipeline(ops, out, deploy=hints), instance="i6", on_daemon_loss="stop")
        assert wait_until(lambda: lines(out) >= 2)
        procs[1].kill()
        assert wait_until(lambda: find_instance(zsession, "i6")[0].state == "stopped", 10)
        found, states, _ = find_instance(zsession, "i6")
        assert "instance stopped" in found.events[-1]["what"]
        assert states == {}


def test_daemon_without_a_valid_token_is_never_given_work(router, zsession, tmp_path):
    from zflow.transport.auth import issue_token

    secret = b"k" * 32
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    with in_process_daemons(router, tmp_path, "d1", token=issue_token(secret, "d1")), \
            in_process_daemons(router, tmp_path, "d2", token=issue_token(secret, "d1")):
        rec = create_instance(zsession, pipeline(ops, out), instance="t1", policy="spread", secret=secret)
        assert set(rec.placement.values()) == {"d1/default"} and rec.trusted == ["d1"]
        with pytest.raises(UserError, match="d2/default: daemon 'd2' shows a bootstrap token issued for daemon 'd1'"):
            create_instance(zsession, pipeline(ops, out, flow="pinned", deploy={"dbl": {"daemon": "d2"}}),
                            secret=secret)
        delete_instance(zsession, "t1")


def test_daemon_can_be_the_router(tmp_path):
    from zflow.transport.session import SessionOptions, free_port, open_session

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    conf = DaemonConfig(id="solo", router=True, data_dir=str(tmp_path / "solo"), zenoh={"listen": [endpoint]})
    with Daemon(conf, echo=False), open_session(SessionOptions(mode="client", connect=[endpoint])) as s:
        create_instance(s, pipeline(ops, out), instance="r1")
        assert wait_until(lambda: lines(out) >= 3)
        delete_instance(s, "r1")


def test_instance_ids_are_not_reused(router, zsession, tmp_path):
    ops = write_operators(tmp_path / "ops")
    with in_process_daemons(router, tmp_path, "d1"):
        create_instance(zsession, pipeline(ops, tmp_path / "o"), instance="same", start=False)
        with pytest.raises(UserError, match="instance pipe/same already exists"):
            create_instance(zsession, pipeline(ops, tmp_path / "o"), instance="same")
        delete_instance(zsession, "same")


def test_daemon_back_after_its_nodes_moved_does_not_run_them_twice(router, zsession, tmp_path):
    from daemon_helpers import DaemonProcess

    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    specs = [("d1", tmp_path / "d1"), ("d2", tmp_path / "d2")]
    hints = {"src": {"daemons": ["d1", "d2"]}}
    with daemon_processes(specs, [router.endpoint]) as procs:
        rec = create_instance(zsession, pipeline(ops, out, deploy=hints), instance="i7", policy="spread")
        moved = rec.nodes_on("d2")
        assert moved
        procs[1].kill()
        assert wait_until(lambda: set(moved) <= set(find_instance(zsession, "i7")[0].nodes_on("d1")), 20), \
            (tmp_path / "d1" / "daemon.log").read_text()
        back = DaemonProcess("d2", tmp_path / "d2", [router.endpoint])
        procs.append(back)
        back.wait_ready()
        status = ControlClient(zsession).status("d2")
        assert status["running"] == [] and status["instances"] == 1
        n = lines(out)
        assert wait_until(lambda: lines(out) >= n + 3)
