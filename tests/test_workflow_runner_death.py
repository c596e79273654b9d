"""Issue 8, observation 6: runs of a `zflow workflow run` killed with SIGKILL end as Error with the
reason (whoever serves or reads the records notices), `workflow run` exits 1 when runs failed, and
its messages are true."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import wait_for

from zflow.workflows.runs import query_runs

DATA = Path(__file__).parent / "workflow_data"


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts: killed (with their process group) if the test left them running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def _start(procs: list[subprocess.Popen[str]], zflow_cmd: list[str], env: dict[str, str], *args: str,
           log: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([*zflow_cmd, *args], stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, env=env)
    procs.append(p)
    return p


def _slow_workflow(tmp: Path, seconds: int = 60) -> Path:
    """One run whose step sleeps long enough to be in flight when the runner is killed."""
    shutil.copytree(DATA / "actions", tmp / "actions")
    wf = tmp / "slow.yaml"
    wf.write_text((DATA / "slow.yaml").read_text().replace("{seconds: 5}", f"{{seconds: {seconds}}}"))
    return wf


def _sigkill(p: subprocess.Popen[str]) -> None:
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL


@pytest.mark.timeout(120)
def test_killed_runner_runs_end_as_error_for_a_reader_of_its_folder(
        tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str], procs: list[subprocess.Popen[str]]) -> None:
    state = tmp_path / "state"
    runner = _start(procs, zflow_cmd, cli_env, "workflow", "run", str(_slow_workflow(tmp_path)),
                    "--state-dir", str(state), log=tmp_path / "runner.log")
    records = state / "workflows" / "slow" / "runs" / "slow"
    first = wait_for(lambda: sorted(records.glob("*.json")), "a run in flight on disk")
    assert json.loads(first[0].read_text())["status"] == "Running"
    alive = subprocess.run([*zflow_cmd, "workflow", "runs", "--state-dir", str(state), "--json"],
                           capture_output=True, text=True, env=cli_env, timeout=60)
    assert [r["status"] for r in json.loads(alive.stdout)] == ["Running"]  # its runner holds the lock
    _sigkill(runner)

    res = subprocess.run([*zflow_cmd, "workflow", "runs", "--state-dir", str(state), "--json"],
                         capture_output=True, text=True, env=cli_env, timeout=60)
    assert res.returncode == 0, res.stderr
    [rec] = json.loads(res.stdout)
    assert rec["status"] == "Error", rec
    assert rec["error"].startswith(f"the workflow runner {rec['runner']} is gone (it no longer holds its lock")
    assert "died or was stopped before the run finished" in rec["error"]
    assert json.loads(first[0].read_text())["status"] == "Error"  # settled on disk, for every reader
    show = subprocess.run([*zflow_cmd, "workflow", "run-show", rec["run"], "--state-dir", str(state)],
                          capture_output=True, text=True, env=cli_env, timeout=60)
    assert show.returncode == 0 and f"run {rec['run']} of workflow slow: Error" in show.stdout


@pytest.mark.timeout(150)
def test_killed_runner_runs_end_as_error_in_the_network_storage(
        tmp_path: Path, router, zsession, zflow_cmd: list[str], cli_env: dict[str, str],
        procs: list[subprocess.Popen[str]]) -> None:
    ep = router.endpoint
    storage = _start(procs, zflow_cmd, cli_env, "workflow", "storage", "--connect", ep, "--dir",
                     str(tmp_path / "store"), log=tmp_path / "storage.log")
    wait_for(lambda: "runs storage serving" in (tmp_path / "storage.log").read_text(), "the runs storage")
    runner = _start(procs, zflow_cmd, cli_env, "workflow", "run", str(_slow_workflow(tmp_path)), "--connect", ep,
                    "--no-storage", "--state-dir", str(tmp_path / "state"), log=tmp_path / "runner.log")
    [rec] = wait_for(lambda: query_runs(zsession, "slow"), "a run in flight")
    assert rec["status"] == "Running" and rec["runner"]
    _sigkill(runner)

    [rec] = wait_for(lambda: [r for r in query_runs(zsession, "slow") if r["status"] != "Running"], "the run to end")
    assert rec["status"] == "Error"
    assert rec["error"] == (f"the workflow runner {rec['runner']} is gone (its liveliness token is gone): "
                            "it died or was stopped before the run finished")
    assert storage.poll() is None
    res = subprocess.run([*zflow_cmd, "workflow", "runs", "--connect", ep, "--json"], capture_output=True,
                         text=True, env=cli_env, timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout)[0]["status"] == "Error", res.stderr


@pytest.mark.timeout(150)
def test_a_storage_started_after_the_runner_died_ends_its_runs(
        tmp_path: Path, router, zsession, zflow_cmd: list[str], cli_env: dict[str, str],
        procs: list[subprocess.Popen[str]]) -> None:
    ep = router.endpoint
    store = tmp_path / "store"

    def storage(name: str) -> subprocess.Popen[str]:
        p = _start(procs, zflow_cmd, cli_env, "workflow", "storage", "--connect", ep, "--dir", str(store),
                   log=tmp_path / name)
        wait_for(lambda: "runs storage serving" in (tmp_path / name).read_text(), "the runs storage")
        return p

    first = storage("storage1.log")
    runner = _start(procs, zflow_cmd, cli_env, "workflow", "run", str(_slow_workflow(tmp_path)), "--connect", ep,
                    "--no-storage", "--state-dir", str(tmp_path / "state"), log=tmp_path / "runner.log")
    [rec] = wait_for(lambda: query_runs(zsession, "slow"), "a run in flight")
    wait_for(lambda: list((store / "runs" / "slow").glob("*.json")), "the record on disk")
    _sigkill(first)  # the storage dies first: it cannot see the runner go
    _sigkill(runner)
    assert json.loads(next((store / "runs" / "slow").glob("*.json")).read_text())["status"] == "Running"

    storage("storage2.log")
    [rec] = wait_for(lambda: [r for r in query_runs(zsession, "slow") if r["status"] != "Running"], "the run to end")
    assert rec["status"] == "Error" and rec["error"] == (
        f"the workflow runner {rec['runner']} is gone (it has no liveliness token on the Zenoh network): "
        "it died or was stopped before the run finished")


@pytest.mark.timeout(120)
def test_a_runner_that_stops_cancels_its_runs_and_they_stay_canceled(
        tmp_path: Path, router, zsession, zflow_cmd: list[str], cli_env: dict[str, str],
        procs: list[subprocess.Popen[str]]) -> None:
    """A graceful stop (Ctrl-C) cancels its runs; the token going away must not turn them to Error."""
    ep = router.endpoint
    _start(procs, zflow_cmd, cli_env, "workflow", "storage", "--connect", ep, "--dir", str(tmp_path / "store"),
           log=tmp_path / "storage.log")
    wait_for(lambda: "runs storage serving" in (tmp_path / "storage.log").read_text(), "the runs storage")
    runner = _start(procs, zflow_cmd, cli_env, "workflow", "run", str(_slow_workflow(tmp_path)), "--connect", ep,
                    "--no-storage", "--state-dir", str(tmp_path / "state"), log=tmp_path / "runner.log")
    wait_for(lambda: query_runs(zsession, "slow"), "a run in flight")
    runner.send_signal(signal.SIGINT)
    assert runner.wait(timeout=60) == 130
    assert "zflow: 1 run(s) in flight were canceled by the stop" in (tmp_path / "runner.log").read_text()
    [rec] = wait_for(lambda: [r for r in query_runs(zsession, "slow") if r["status"] != "Running"], "the run to end")
    time.sleep(3)  # past the storage's grace for a stopping runner's last events
    [rec] = query_runs(zsession, "slow")
    assert rec["status"] == "Canceled" and rec["error"] == "the workflow was stopped"


@pytest.mark.timeout(120)
def test_workflow_run_exit_code_says_whether_every_run_completed(tmp_path: Path, zflow_cmd: list[str],
                                                                 cli_env: dict[str, str]) -> None:
    res = subprocess.run([*zflow_cmd, "workflow", "run", str(DATA / "failing.yaml"), "--runs", "4",
                          "--state-dir", str(tmp_path)], capture_output=True, text=True, env=cli_env, timeout=100)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "4 runs: 2 Completed, 2 Error" in res.stdout
    assert "zflow: 2 of 4 runs did not complete (Error)" in res.stderr


@pytest.mark.timeout(120)
def test_a_step_failing_at_start_is_reported_as_such_not_as_a_timeout(tmp_path: Path, zflow_cmd: list[str],
                                                                      cli_env: dict[str, str]) -> None:
    shutil.copytree(DATA / "actions" / "add", tmp_path / "actions" / "boom")
    meta = tmp_path / "actions" / "boom" / "ryax_metadata.yaml"
    meta.write_text(meta.read_text().replace("id: add", "id: boom"))
    (tmp_path / "actions" / "boom" / "ryax_handler.py").write_text(
        'raise RuntimeError("boom at import")\n\n\ndef handle(inputs):\n    return {"y": 1}\n')
    wf = tmp_path / "wf.yaml"
    wf.write_text("apiVersion: ryax.tech/v2.0\nkind: Workflows\nspec:\n  id: boomwf\n  actions_path: [actions]\n"
                  "  actions:\n    - {id: tick, from: emit-every, inputs: {interval: 100ms, count: 2}}\n"
                  "    - {id: b, from: boom, inputs: {x: {reference_value: tick.index}}}\n")
    res = subprocess.run([*zflow_cmd, "workflow", "run", str(wf), "--state-dir", str(tmp_path / "st")],
                         capture_output=True, text=True, env=cli_env, timeout=100)
    assert res.returncode == 1
    assert "RuntimeError: boom at import" in res.stderr
    assert "error: workflow step boomwf/b failed after " in res.stderr
    assert "s, before every step was ready (see its output above)" in res.stderr
    assert "not ready after" not in res.stderr
