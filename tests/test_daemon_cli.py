"""The CLI over Zenoh only: daemon list/status/logs, instance create/status/list/stop/delete,
sched explain, and clear errors for bad hints and unknown names."""

from __future__ import annotations

import json
import subprocess

import pytest
from daemon_helpers import in_process_daemons, lines, wait_until, write_operators

pytestmark = pytest.mark.timeout(120)

FLOW = """\
name: pipe
sources:
  - {id: src, operator: ./ops/nodes.py:ticks, outputs: [out]}
operators:
  - id: dbl
    operator: ./ops/nodes.py:double
    inputs: [in]
    outputs: [out]
    deploy: {DEPLOY}
sinks:
  - {id: sink, operator: ./ops/nodes.py:Collect, inputs: [in], configuration: {path: "{{ OUT }}"}}
links:
  - {from: {node: src, output: out}, to: {node: dbl, input: in}}
  - {from: {node: dbl, output: out}, to: {node: sink, input: in}}
"""


@pytest.fixture
def site(router, tmp_path, cli_env, zflow_cmd):
    write_operators(tmp_path / "ops")

    def zflow(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*zflow_cmd, *args, "--connect", router.endpoint], env=cli_env,
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"zflow {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def flow(deploy: str = "{}") -> str:
        path = tmp_path / "flow.yaml"
        path.write_text(FLOW.replace("{DEPLOY}", deploy))
        return str(path)

    with in_process_daemons(router, tmp_path, "edge-1", "edge-2"):
        yield zflow, flow, tmp_path


def test_daemon_list_status_and_logs(site):
    zflow, _flow, _tmp = site
    out = zflow("daemon", "list").stdout
    assert "edge-1" in out and "edge-2" in out and "open" in out
    status = json.loads(zflow("daemon", "status", "edge-1").stdout)
    assert status["id"] == "edge-1" and status["pools"][0]["name"] == "default"
    bad = zflow("daemon", "status", "edge-3", check=False)
    assert bad.returncode == 2 and "no daemon 'edge-3' is reachable" in bad.stderr
    assert "did you mean 'edge-" in bad.stderr
    assert "daemon edge-1 ready" in zflow("daemon", "logs", "edge-1").stdout


def test_instance_life_cycle_from_the_cli(site):
    zflow, flow, tmp = site
    out = tmp / "out.jsonl"
    created = zflow("instance", "create", flow("{daemon: edge-2}"), "--id", "c1", "--var", f"OUT={out}")
    assert created.stdout.strip() == "pipe/c1"
    assert wait_until(lambda: lines(out) >= 3)
    status = zflow("instance", "status", "c1").stdout
    assert "dbl" in status and "edge-2/default" in status and "running" in status and "started" in status
    assert "pipe/c1" in zflow("instance", "list").stdout
    zflow("instance", "stop", "pipe/c1")
    assert "state stopped" in zflow("instance", "status", "c1").stdout
    zflow("instance", "start", "c1")
    n = lines(out)
    assert wait_until(lambda: lines(out) >= n + 3)
    zflow("instance", "delete", "c1")
    assert "(no instances)" in zflow("instance", "list").stdout
    missing = zflow("instance", "status", "c1", check=False)
    assert missing.returncode == 2 and "no instance 'c1'" in missing.stderr


def test_sched_explain_prints_every_reason(site):
    zflow, flow, tmp = site
    ok = zflow("sched", "explain", flow("{daemon: edge-2}"), "--var", f"OUT={tmp / 'o'}")
    assert "dbl: -> edge-2/default" in ok.stdout
    assert "edge-1/default: daemon 'edge-1' is not a requested daemon (edge-2)" in ok.stdout
    assert "same score 150 as edge-1/default, which sorts first" in ok.stdout
    bad = zflow("sched", "explain", flow("{arch: arm64}"), "--var", f"OUT={tmp / 'o'}", check=False)
    assert bad.returncode == 1 and "dbl: CANNOT BE PLACED" in bad.stdout
    assert "edge-2/default: architecture x86_64 is not a requested one (aarch64)" in bad.stdout


def test_bad_deploy_hint_and_unplaceable_node_are_located(site):
    zflow, flow, tmp = site
    path = flow("{sites_list: [a]}")
    bad = zflow("instance", "create", path, "--var", f"OUT={tmp / 'o'}", check=False)
    assert bad.returncode == 2
    assert f"{path}:" in bad.stderr and "deploy.sites_list: node 'dbl': unknown deploy key 'sites_list'" in bad.stderr
    assert "did you mean 'sites'?" in bad.stderr
    path = flow("{resources: {cpu: 64}}")
    bad = zflow("instance", "create", path, "--var", f"OUT={tmp / 'o'}", check=False)
    assert bad.returncode == 2 and "node 'dbl' cannot be placed" in bad.stderr and "needs 64 CPU" in bad.stderr


def test_standalone_scheduler_answers_explain(site, router, cli_env, zflow_cmd):
    zflow, flow, tmp = site
    serve = subprocess.Popen([*zflow_cmd, "sched", "serve", "--connect", router.endpoint], env=cli_env,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert "scheduler ready" in serve.stderr.readline()
        out = zflow("sched", "explain", flow(), "--var", f"OUT={tmp / 'o'}").stdout
        assert "decided by the scheduler service; daemons: edge-1, edge-2" in out
    finally:
        serve.terminate()
        assert serve.wait(10) == 0
