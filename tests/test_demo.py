"""``zflow demo``, the README's first command, run as a person would: a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_runtime import _children_of  # node hosts still alive for a supervisor pid

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(90)
def test_zflow_demo_runs_end_to_end_and_prints_its_summary(tmp_path, cli_env, zflow_cmd):
    proc = subprocess.Popen([*zflow_cmd, "demo", "--epochs", "200", "--out", str(tmp_path)], env=cli_env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=80)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    for text in ("54 simulated motes x 200 epochs", "readings generated", "dropped as faulty",
                 "windows computed", "anomalies found", "elapsed", str(tmp_path / "anomalies.jsonl")):
        assert text in out, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] and summary["clean"]["seen"] > 200 * 54 * 0.8
    assert f"{summary['clean']['seen']:,}" in out and f"{summary['windows']:,}" in out
    assert len((tmp_path / "windows.jsonl").read_text().splitlines()) == summary["windows"]
    assert len((tmp_path / "anomalies.jsonl").read_text().splitlines()) == summary["anomalies"]
    assert _children_of(proc.pid) == []


@pytest.mark.timeout(60)
def test_zflow_demo_duration_stops_a_real_time_run(tmp_path, cli_env, zflow_cmd):
    proc = subprocess.run([*zflow_cmd, "demo", "--speed", "1", "--duration", "1", "--out", str(tmp_path)],
                          env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert "stopped by --duration" in proc.stdout and "stopped before the stream ended" in proc.stdout
    assert not json.loads((tmp_path / "summary.json").read_text())["complete"]


def test_zflow_demo_bad_options_are_usage_errors(cli_env, zflow_cmd):
    proc = subprocess.run([*zflow_cmd, "demo", "--epochs", "0"], env=cli_env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "--epochs: expected a whole number, 1 or more, got '0'" in proc.stderr
    proc = subprocess.run([*zflow_cmd, "demo", "--duration", "-1"], env=cli_env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "--duration: expected a finite number of seconds greater than 0, got '-1'" in proc.stderr
    env = dict(cli_env, ZFLOW_DEMO_FLOW=os.devnull + ".missing.yaml")
    proc = subprocess.run([*zflow_cmd, "demo"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "error" in proc.stderr and "Traceback" not in proc.stderr


def test_the_demo_descriptor_checks_clean(cli_env, zflow_cmd):
    proc = subprocess.run([*zflow_cmd, "check", str(ROOT / "examples" / "demo" / "demo.yaml")], env=cli_env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(60)
def test_zflow_demo_reports_bad_builtin_config_before_starting(tmp_path, cli_env, zflow_cmd):
    demo = ROOT / "examples" / "demo"
    for name in ("clean.py", "summary.py"):
        (tmp_path / name).write_text((demo / name).read_text())
    (tmp_path / "demo.yaml").write_text((demo / "demo.yaml").read_text().replace("size: 20", "size: -20"))
    proc = subprocess.run([*zflow_cmd, "demo", "--out", str(tmp_path / "out")],
                          env=dict(cli_env, ZFLOW_DEMO_FLOW=str(tmp_path / "demo.yaml")),
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 2
    assert "demo.yaml:40: operators[1].configuration.size: window: size: input should be greater than 0 " \
           "(got -20)" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
def test_zflow_demo_shows_why_a_node_failed_to_start(tmp_path, cli_env, zflow_cmd):
    demo = ROOT / "examples" / "demo"
    (tmp_path / "summary.py").write_text((demo / "summary.py").read_text())
    (tmp_path / "clean.py").write_text((demo / "clean.py").read_text().replace(
        "    def setup(self, ctx):\n",
        "    def setup(self, ctx):\n        from zflow.errors import UserError\n"
        "        raise UserError('clean: calibration table /nonexistent not found')\n"))
    (tmp_path / "demo.yaml").write_text((demo / "demo.yaml").read_text())
    proc = subprocess.run([*zflow_cmd, "demo", "--out", str(tmp_path / "out")],
                          env=dict(cli_env, ZFLOW_DEMO_FLOW=str(tmp_path / "demo.yaml")),
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode in (1, 2)
    assert "clean: calibration table /nonexistent not found" in proc.stderr
    assert "Traceback" not in proc.stderr
