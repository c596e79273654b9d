"""Workflows end to end: real Zenoh router, real step processes, the CLI, the runs storage."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from zflow import codec
from zflow.transport.session import free_port
from zflow.workflows.workflow import load_workflow
from zflow.workflows.workflow_runner import WorkflowRunner

DATA = Path(__file__).parent / "workflow_data"
EXAMPLES = Path(__file__).parent.parent / "examples" / "workflows"


def _run_cli(zflow_cmd: list[str], env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*zflow_cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.timeout(90)
def test_cli_run_three_steps(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    res = _run_cli(zflow_cmd, cli_env, "workflow", "run", str(DATA / "three-steps.yaml"), "--runs", "4",
                   "--state-dir", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    assert len(records) == 4 and all(r["status"] == "Completed" for r in records)
    totals = sorted(r["results"]["total"] for r in records)
    assert totals == [11 + 2 * i for i in range(4)]  # ((i + 1) + 10) + i
    rec = records[0]
    assert set(rec["steps"]) == {"tick", "a", "b", "c"}
    assert all(e["host"] and e["site"] == "local" and e["end"] >= e["start"] for ex in rec["steps"].values() for e in ex)
    assert "adding 10" in rec["steps"]["b"][0]["logs"]
    # the records are on disk for the offline commands
    store = tmp_path / "workflows" / "three-steps" / "runs"
    show = _run_cli(zflow_cmd, cli_env, "workflow", "run-show", rec["run"], "--store", str(store))
    assert show.returncode == 0 and "Completed" in show.stdout and "total = " in show.stdout
    logs = _run_cli(zflow_cmd, cli_env, "workflow", "logs", rec["run"], "--store", str(store), "--step", "a")
    assert logs.returncode == 0 and logs.stdout.startswith("[a] adding 1 to")
    listed = _run_cli(zflow_cmd, cli_env, "workflow", "runs", "--state-dir", str(tmp_path))
    assert listed.returncode == 0 and listed.stdout.count("three-steps") == 4


@pytest.mark.timeout(90)
def test_failing_step_fails_only_its_run(tmp_path: Path) -> None:
    wf = load_workflow(DATA / "failing.yaml")
    with WorkflowRunner(wf, tmp_path, max_runs=4) as runner:
        records = runner.wait(runs=4, timeout=60)
    by_index = sorted(records, key=lambda r: r["created"])
    assert [r["status"] for r in by_index] == ["Completed", "Error", "Completed", "Error"]
    bad = by_index[1]
    assert "odd number 1" in bad["error"] and "check" in bad["error"]
    check = bad["steps"]["check"][0]
    assert check["status"] == "Error" and check["code"] == 422
    assert "after" not in bad["steps"]  # the failed run stopped there
    assert by_index[2]["outputs"]["after.y"] == 3


@pytest.mark.timeout(120)
def test_run_records_survive_storage_restart(tmp_path: Path, router, zflow_cmd: list[str],
                                             cli_env: dict[str, str]) -> None:
    ep = router.endpoint
    store_dir = tmp_path / "store"

    def start_storage() -> subprocess.Popen[str]:
        p = subprocess.Popen([*zflow_cmd, "workflow", "storage", "--connect", ep, "--dir", str(store_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
        assert p.stdout is not None and "runs storage serving" in p.stdout.readline()
        return p

    def stop(p: subprocess.Popen[str]) -> None:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)

    storage = start_storage()
    try:
        res = _run_cli(zflow_cmd, cli_env, "workflow", "run", str(DATA / "three-steps.yaml"), "--runs", "3",
                       "--connect", ep, "--no-storage", "--state-dir", str(tmp_path / "state"))
        assert res.returncode == 0, res.stderr
        assert "3 runs: 3 Completed" in res.stdout
    finally:
        stop(storage)
    assert len(list((store_dir / "runs" / "three-steps").glob("*.json"))) == 3
    storage = start_storage()
    try:
        listed = _run_cli(zflow_cmd, cli_env, "workflow", "runs", "three-steps", "--connect", ep, "--json")
        assert listed.returncode == 0, listed.stderr
        records = json.loads(listed.stdout)
        assert len(records) == 3 and {r["status"] for r in records} == {"Completed"}
        one = records[0]["run"]
        show = _run_cli(zflow_cmd, cli_env, "workflow", "run-show", one, "--connect", ep)
        assert show.returncode == 0 and one in show.stdout and "Completed" in show.stdout
        missing = _run_cli(zflow_cmd, cli_env, "workflow", "run-show", "WorkflowRun-0-none", "--connect", ep)
        assert missing.returncode == 1 and "not found" in missing.stderr
    finally:
        stop(storage)


@pytest.mark.timeout(90)
def test_on_demand_step_scales_to_zero(tmp_path: Path) -> None:
    text = (DATA / "three-steps.yaml").read_text().replace("interval: 20ms", "interval: 600ms").replace(
        "plus: 10}", "plus: 10}\n      execution: on-demand\n      idle_retention: 0.2s")
    p = DATA / "tmp-on-demand.yaml"
    p.write_text(text)
    try:
        wf = load_workflow(p)
    finally:
        p.unlink()
    with WorkflowRunner(wf, tmp_path, max_runs=3) as runner:
        act = runner.activators["b"]
        assert not act.running  # nothing deployed before the first run needs it
        records = runner.wait(runs=3, timeout=60)
        deadline = time.monotonic() + 10
        while act.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not act.running  # idle past its retention: scaled to zero
        # started on demand at least twice (exact count depends on cold-start time vs the interval)
        assert act.starts >= 2 and len(act.cold_starts) == act.starts
    assert [r["status"] for r in records] == ["Completed"] * 3
    assert sorted(r["results"]["total"] for r in records) == [11, 13, 15]


@pytest.mark.timeout(90)
def test_files_cross_sites_through_global_store_only_when_needed(tmp_path: Path) -> None:
    wf = load_workflow(DATA / "sites.yaml")
    with WorkflowRunner(wf, tmp_path, max_runs=2) as runner:
        records = runner.wait(runs=2, timeout=60)
    for r in records:
        assert r["status"] == "Completed", r["error"]
        steps = r["steps"]
        # make (edge): file + folder into the edge store; only the file goes global (cloud reads it)
        assert steps["make"][0]["transfers"] == {"put_site": 2, "put_global": 1}
        # near (edge): produced on its own site and cached there: nothing pulled
        assert not steps["near"][0].get("transfers")
        # far (cloud): pulls the file from the global store, never from the edge store
        assert steps["far"][0]["transfers"] == {"get_global": 1}
        assert steps["far"][0]["site"] == "cloud"
        assert r["outputs"]["near.size"] == r["outputs"]["far.size"] + 3
    assert (tmp_path / "blobs" / "global").is_dir() and len(list((tmp_path / "blobs" / "global").iterdir())) == 2


@pytest.mark.timeout(90)
def test_http_trigger_starts_runs(tmp_path: Path) -> None:
    port = free_port()
    p = tmp_path / "http.yaml"
    p.write_text((DATA / "http.yaml").read_text().replace("port: 0", f"port: {port}")
                 .replace("actions_path: [actions]", f"actions_path: [{DATA / 'actions'}]"))
    wf = load_workflow(p)
    with WorkflowRunner(wf, tmp_path / "state") as runner:
        for body in (b"hello", b"zflow workflows"):
            for _ in range(50):
                try:
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/runs", data=body, method="POST")
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        assert resp.status == 202
                    break
                except OSError:
                    time.sleep(0.1)
        records = runner.wait(runs=2, timeout=30)
    assert sorted(r["results"]["length"] for r in records) == [5, 15]


@pytest.mark.timeout(90)
def test_zenoh_trigger_and_machining_example_into_tsdb(tmp_path: Path, router, zsession) -> None:
    got: list[object] = []
    sub = zsession.declare_subscriber("zflow/tsdb/machining-anomalies/ingest",
                                      lambda s: got.append(codec.decode(s.payload.to_bytes(), str(s.encoding))))
    try:
        wf = load_workflow(EXAMPLES / "machining" / "workflow.yaml")
        with WorkflowRunner(wf, tmp_path / "m", connect=[router.endpoint]) as runner:
            records = runner.wait(runs=10, timeout=60)
        assert [r["status"] for r in records] == ["Completed"] * 10
        assert sum(r["results"]["anomalies"] for r in records) >= 5  # injected chatter events
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and all("vibration_rms" in row and "score" in row for batch in got for row in batch)
    finally:
        sub.undeclare()
    wf = load_workflow(DATA / "zsub.yaml")
    with WorkflowRunner(wf, tmp_path / "z", connect=[router.endpoint]) as runner:
        pub = zsession.declare_publisher("test/wf/in/x")
        deadline = time.monotonic() + 30  # the trigger subscribes once started
        while not pub.matching_status.matching:
            assert time.monotonic() < deadline, "the trigger never subscribed"
            time.sleep(0.05)
        for text in ("a", "bbb"):
            pub.put(text.encode())
        pub.undeclare()
        records = runner.wait(runs=2, timeout=30)
    assert sorted(r["outputs"]["measure.length"] for r in records) == [1, 3]


@pytest.mark.timeout(90)
def test_agriculture_example_two_sites(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    res = _run_cli(zflow_cmd, cli_env, "workflow", "run", str(EXAMPLES / "agriculture" / "workflow.yaml"),
                   "--runs", "2", "--state-dir", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    assert [r["status"] for r in records] == ["Completed"] * 2
    for r in records:
        assert r["steps"]["report"][0]["site"] == "field-station" and r["steps"]["archive"][0]["site"] == "cloud"
        assert r["steps"]["archive"][0]["transfers"]["get_global"] == 1
        assert r["results"]["archive"]["name"].endswith(".tar.gz")


@pytest.mark.timeout(90)
def test_deploy_and_undeploy(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    wf = DATA / "three-steps.yaml"
    res = _run_cli(zflow_cmd, cli_env, "workflow", "deploy", str(wf), "--state-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "deployed" / "three-steps.json").read_text())
    runs_dir = tmp_path / "workflows" / "three-steps" / "runs" / "three-steps"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(runs_dir.glob("*.json"))) < 3:
            time.sleep(0.2)
        assert len(list(runs_dir.glob("*.json"))) >= 3
        again = _run_cli(zflow_cmd, cli_env, "workflow", "deploy", str(wf), "--state-dir", str(tmp_path))
        assert again.returncode == 2 and "already deployed" in again.stderr
    finally:
        res = _run_cli(zflow_cmd, cli_env, "workflow", "undeploy", "three-steps", "--state-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(info["pid"], 0)
    listed = _run_cli(zflow_cmd, cli_env, "workflow", "runs", "three-steps", "--store", str(runs_dir.parent))
    assert listed.returncode == 0 and "Completed" in listed.stdout
    gone = _run_cli(zflow_cmd, cli_env, "workflow", "undeploy", "three-steps", "--state-dir", str(tmp_path))
    assert gone.returncode == 2 and "not deployed" in gone.stderr


@pytest.mark.timeout(60)
def test_stopping_cancels_runs_in_flight(tmp_path: Path) -> None:
    from zflow.workflows.runs import RunStore

    wf = load_workflow(DATA / "slow.yaml")
    runner = WorkflowRunner(wf, tmp_path).start()
    try:
        deadline = time.monotonic() + 20
        while not runner.records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    records = RunStore(tmp_path / "runs").list("slow")
    assert len(records) == 1 and records[0]["status"] == "Canceled"
    assert records[0]["error"] == "the workflow was stopped"


@pytest.mark.timeout(60)
def test_trigger_with_dynamic_outputs(tmp_path: Path) -> None:
    wf = load_workflow(DATA / "form.yaml")
    with WorkflowRunner(wf, tmp_path) as runner:
        records = runner.wait(runs=2, timeout=30)
    ok, bad = sorted(records, key=lambda r: r["created"])
    assert ok["status"] == "Completed" and ok["outputs"]["measure.length"] == 3  # "ada"
    assert bad["status"] == "Error" and "output 'age' must be of type integer" in bad["error"]


@pytest.mark.timeout(60)
def test_time_limit_fails_the_run(tmp_path: Path) -> None:
    wf = load_workflow(DATA / "time-limit.yaml")
    with WorkflowRunner(wf, tmp_path) as runner:
        records = runner.wait(runs=1, timeout=30)
    assert records[0]["status"] == "Error" and "exceeded its time limit of 0.3s" in records[0]["error"]
    assert records[0]["steps"]["nap"][0]["code"] == 504


@pytest.mark.timeout(60)
def test_cli_run_for_a_duration_and_compile_graph(tmp_path: Path, zflow_cmd: list[str],
                                                   cli_env: dict[str, str]) -> None:
    res = _run_cli(zflow_cmd, cli_env, "workflow", "run", str(DATA / "three-steps.yaml"), "--duration", "1.5",
                   "--state-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "Completed" in res.stdout and "runs:" in res.stdout
    graph = _run_cli(zflow_cmd, cli_env, "workflow", "compile", "--graph", str(DATA / "three-steps.yaml"))
    nodes = json.loads(graph.stdout)["nodes"]
    assert nodes["tick"]["kind"] == "source" and nodes["c"]["kind"] == "sink"
    assert nodes["a"]["inputs"]["tick"]["upstream"]["key"] == "zflow/data/three-steps/main/tick/out"


@pytest.mark.timeout(60)
def test_join_waits_for_both_branches_and_skips_failed_runs(tmp_path: Path) -> None:
    wf = load_workflow(DATA / "diamond.yaml")
    assert sorted(wf.steps["join"].parents) == ["a", "check"]
    with WorkflowRunner(wf, tmp_path, max_runs=4) as runner:
        records = runner.wait(runs=4, timeout=30)
    records.sort(key=lambda r: r["created"])
    assert [r["status"] for r in records] == ["Completed", "Error", "Completed", "Error"]
    assert [r["outputs"].get("join.y") for r in records] == [1, None, 5, None]
    assert all("join" not in r["steps"] for r in records[1::2])


@pytest.mark.timeout(60)
def test_list_of_outputs_fans_out_downstream(tmp_path: Path) -> None:
    wf = load_workflow(DATA / "fanout.yaml")
    with WorkflowRunner(wf, tmp_path, max_runs=2) as runner:
        records = runner.wait(runs=2, timeout=30)
    three, none = sorted(records, key=lambda r: r["created"])
    assert three["status"] == "Completed" and len(three["steps"]["each"]) == 3 and len(three["steps"]["last"]) == 3
    assert sorted(e["branch"] for e in three["steps"]["last"]) == [".0", ".1", ".2"]
    assert none["status"] == "Completed" and "each" not in none["steps"]  # [] feeds nothing downstream
