"""Workflows placed by the scheduler: compiled hints drive placement, explain, deploy on daemons."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import in_process_daemons, wait_until

from zflow.daemon.bundles import ship_graph
from zflow.daemon.instance_deploy import list_instances
from zflow.daemon.runner import localize
from zflow.scheduler.model import Pool, demands_for
from zflow.scheduler.node_placement import place
from zflow.workflows.runs import query_runs
from zflow.workflows.workflow import load_workflow
from zflow.workflows.workflow_compiler import to_graph

ACTIONS = Path(__file__).parent / "workflow_data" / "actions"


def write_workflow(tmp: Path, name: str, steps: dict[str, dict[str, Any]], interval: str = "30ms") -> Path:
    """tick -> a -> b -> c (the ``add`` action), with per-step placement extras."""
    lines = ["apiVersion: ryax.tech/v2.0", "kind: Workflows", "spec:", f"  id: {name}",
             f"  actions_path: [{ACTIONS}]", "  actions:",
             f"    - {{id: tick, from: emit-every, inputs: {{interval: {interval}}}}}"]
    prev = "tick.index"
    for sid in ("a", "b", "c"):
        extra = "".join(f", {k}: {json.dumps(v)}" for k, v in steps.get(sid, {}).items())
        lines.append(f"    - {{id: {sid}, from: add, inputs: {{x: {{reference_value: {prev}}}}}{extra}}}")
        prev = f"{sid}.y"
    path = tmp / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def placements(wf_path: Path, pools: list[Pool]) -> dict[str, str | None]:
    graph = to_graph(load_workflow(wf_path))
    return {d.node: d.pool for d in place(pools, demands_for(graph))}


def test_compiled_hints_are_what_the_scheduler_reads(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, "hints", {
        "a": {"constraints": {"site_list": ["B"]}, "resources": {"cpu": 0.5, "memory": "256M"}},
        "b": {"constraints": {"arch_list": ["arm64"], "node_pool_list": ["small"],
                              "site_type_list": ["edge", "fog"]}},
        "c": {"objectives": {"energy": 100}},
    })
    graph = to_graph(load_workflow(path))
    demands = {d.node: d for d in demands_for(graph)}
    assert demands["a"].sites == ("B",) and demands["a"].cpu == 0.5 and demands["a"].memory == 256 * 2**20
    assert demands["b"].arch == ("aarch64",) and demands["b"].pools == ("small",)
    assert demands["b"].labels == {"site_type": ("edge", "fog")}
    assert demands["c"].weights == (0.0, 100.0, 0.0)
    assert demands["tick"].weights == (1.0, 1.0, 1.0) and demands["tick"].sites == ()


def test_constraints_and_objectives_choose_the_pool(tmp_path: Path) -> None:
    pools = [
        Pool("d-a", "fast", arch="x86_64", site="A", labels={"site_type": "cloud"}, cpu=4, performance=90, energy=10),
        Pool("d-a", "green", arch="x86_64", site="A", labels={"site_type": "cloud"}, cpu=4, performance=10,
             energy=90),
        Pool("d-b", "default", arch="aarch64", site="B", labels={"site_type": "fog"}, cpu=4),
    ]
    got = placements(write_workflow(tmp_path, "sites", {"a": {"constraints": {"site_list": ["B"]}},
                                                        "b": {"constraints": {"arch_list": ["arm64"]}}}), pools)
    assert got["a"] == "d-b/default" and got["b"] == "d-b/default"
    assert got["c"].startswith("d-a/")  # unconstrained: the best score (equal weights) wins
    energy = placements(write_workflow(tmp_path, "energy", {"a": {"objectives": {"energy": 100}}}), pools)
    perf = placements(write_workflow(tmp_path, "perf", {"a": {"objectives": {"performance": 100}}}), pools)
    assert energy["a"] == "d-a/green" and perf["a"] == "d-a/fast"
    # a site type list means any of them; a pool given as daemon/pool works too
    fog = placements(write_workflow(tmp_path, "fog", {"a": {"constraints": {"site_type_list": ["edge", "fog"]}},
                                                      "b": {"constraints": {"node_pool_list": ["d-a/green"]}}}),
                     pools)
    assert fog["a"] == "d-b/default" and fog["b"] == "d-a/green"
    none = placements(write_workflow(tmp_path, "none", {"a": {"constraints": {"site_list": ["C"]}}}), pools)
    assert none["a"] is None


def test_action_directories_ship_as_bundles(tmp_path: Path) -> None:
    graph = to_graph(load_workflow(write_workflow(tmp_path, "ship", {})))
    shipped, payloads = ship_graph(graph)
    bundles = {nid: n.deploy["bundle"] for nid, n in shipped.nodes.items()}
    assert set(bundles) == {"tick", "a", "b", "c"} and all(b["config"] == "action_dir" for b in bundles.values())
    assert bundles["a"]["digest"] == bundles["b"]["digest"] and len(payloads) == 2  # emit-every and add
    local = localize(shipped, ["a"], {"a": "/cache/add"})
    assert local.nodes["a"].config["action_dir"] == "/cache/add"
    assert local.nodes["b"].config["action_dir"] == graph.nodes["b"].config["action_dir"]


@pytest.mark.timeout(120)
def test_workflow_deployed_across_two_daemons(router, zsession, tmp_path: Path, zflow_cmd: list[str],
                                              cli_env: dict[str, str]) -> None:
    """explain, deploy --daemons (storage started by the deployer), runs recorded, undeploy."""
    path = write_workflow(tmp_path, "spread", {"b": {"constraints": {"site_list": ["cloud"]}}})
    state = tmp_path / "state"
    conn = ["--connect", router.endpoint]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*zflow_cmd, "workflow", *args], capture_output=True, text=True, env=cli_env,
                              timeout=90)

    sites = {"a-edge": {"site": "edge"}, "b-cloud": {"site": "cloud"}}
    with in_process_daemons(router, tmp_path, "a-edge", "b-cloud", per_daemon=sites):
        res = cli("explain", str(path), *conn)
        assert res.returncode == 0, res.stderr
        assert "b: -> b-cloud/default (site cloud)" in res.stdout
        assert "a-edge/default: site 'edge' is not a requested site (cloud)" in res.stdout
        assert "a: -> a-edge/default (site edge)" in res.stdout
        sched = subprocess.run([*zflow_cmd, "sched", "explain", str(path), *conn], capture_output=True,
                               text=True, env=cli_env, timeout=90)
        assert sched.returncode == 0 and "b: -> b-cloud/default (site cloud)" in sched.stdout, sched.stderr
        bad = write_workflow(tmp_path, "nowhere", {"c": {"constraints": {"site_list": ["moon"]}}})
        res = cli("deploy", str(bad), "--daemons", *conn, "--state-dir", str(state))
        assert res.returncode == 2 and f"{bad}:10:" in res.stderr  # the line of step c, res.stderr
        assert "step 'c' cannot be placed: a-edge/default: site 'edge' is not a requested site (moon)" in res.stderr
        assert not (state / "deployed" / "nowhere.json").exists() and list_instances(zsession) == []
        res = cli("deploy", str(path), "--daemons", *conn, "--state-dir", str(state))
        try:
            assert res.returncode == 0, res.stdout + res.stderr
            assert "b@b-cloud/default (cloud)" in res.stdout
            done: list[dict[str, Any]] = []

            def completed() -> bool:
                done[:] = [r for r in query_runs(zsession, "spread", timeout=2.0) if r["status"] == "Completed"]
                return len(done) >= 3

            assert wait_until(completed, timeout=60.0, interval=0.2)
            for rec in done:
                steps = {sid: ex[0] for sid, ex in rec["steps"].items()}
                assert steps["b"]["daemon"] == "b-cloud" and steps["b"]["site"] == "cloud"
                assert all(steps[s]["daemon"] == "a-edge" and steps[s]["site"] == "edge" for s in ("tick", "a", "c"))
                assert all(e["host"] for e in steps.values())
            show = cli("run-show", done[0]["run"], *conn)
            assert "site=cloud daemon=b-cloud" in show.stdout and "site=edge daemon=a-edge" in show.stdout, show
            # each daemon fetched the action bundles of its steps from the deployer
            assert list((tmp_path / "b-cloud" / "bundles").glob("*/ok"))
            assert [i["instance"] for i in list_instances(zsession)] == ["main"]
            again = cli("deploy", str(path), "--daemons", *conn, "--state-dir", str(state))
            assert again.returncode == 2 and "already deployed on daemons" in again.stderr
        finally:
            res = cli("undeploy", "spread", "--state-dir", str(state))
        assert res.returncode == 0, res.stderr
        assert "deleted instance spread/main" in res.stdout
        assert list_instances(zsession) == []
        # the records the storage wrote survive it
        assert len(list((state / "workflows" / "spread" / "runs" / "spread").glob("*.json"))) >= 3


@pytest.mark.timeout(120)
def test_lost_daemon_step_replaced_within_its_constraints(router, zsession, tmp_path: Path) -> None:
    """The cloud step's daemon goes away: it moves to the other cloud daemon, not to the edge."""
    from zflow.daemon.config import DaemonConfig
    from zflow.daemon.server import Daemon
    from zflow.workflows.deploy import deploy_workflow, undeploy_workflow
    from zflow.workflows.runs import RunsStorage

    wf = load_workflow(write_workflow(tmp_path, "moving", {"b": {"constraints": {"site_list": ["cloud"]}}}))
    sites = {"a-edge": "edge", "b-cloud": "cloud", "c-cloud": "cloud"}
    with contextlib.ExitStack() as stack:
        storage = RunsStorage(zsession, tmp_path / "runs", "moving")
        stack.callback(storage.close)
        daemons = {i: stack.enter_context(contextlib.ExitStack()) for i in sites}
        for i, site in sites.items():
            conf = DaemonConfig(id=i, site=site, data_dir=str(tmp_path / i), zenoh={"connect": [router.endpoint]})
            daemons[i].enter_context(Daemon(conf, echo=False))
        rec, plan = deploy_workflow(zsession, wf)
        assert plan.pools["b"] == "b-cloud/default" and rec.placement["a"] == "a-edge/default"

        def ran_on(daemon: str) -> bool:
            return any(r["status"] == "Completed" and r["steps"]["b"][0]["daemon"] == daemon
                       for r in query_runs(zsession, "moving", timeout=2.0))

        assert wait_until(lambda: ran_on("b-cloud"), timeout=60.0, interval=0.2)
        daemons["b-cloud"].close()  # the daemon stops: its token goes, the others re-place
        assert wait_until(lambda: ran_on("c-cloud"), timeout=60.0, interval=0.2)
        undeploy_workflow(zsession, "moving")
