"""Daemon identity/capacity config, detection, bootstrap tokens and the Raspberry-Pi footprint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zflow.daemon.config import load_config
from zflow.errors import UserError
from zflow.transport.auth import check_token, issue_token, load_secret

SECRET = b"0123456789abcdef0123456789abcdef"


def test_detected_config_has_identity_and_capacity():
    cfg = load_config(None)
    assert cfg.cpus >= 1 and cfg.memory > 0 and cfg.arch in ("x86_64", "aarch64", "armv7l")
    [pool] = cfg.resolve().pool_list()
    assert pool.name == "default" and pool.cpu == cfg.cpus and pool.daemon == cfg.id


def test_yaml_config_with_pools(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_text(
        "id: edge-1\nsite: field\narch: arm64\ncpus: 4\nmemory: 2G\nlabels: {camera: 'yes'}\n"
        "pools:\n  - {name: fast, cpu: 3, memory: 1536M, performance: 90, energy: 20, cost: 30}\n"
        "  - {name: eco, cpu: 1, memory: 512M, performance: 20, energy: 95, cost: 90, labels: {tier: low}}\n"
        "zenoh: {mode: client, connect: [tcp/10.0.0.1:7447]}\n")
    cfg = load_config(str(path), {"site": "barn"})
    assert cfg.arch == "aarch64" and cfg.memory == 2 * 1024**3 and cfg.site == "barn"
    fast, eco = cfg.resolve().pool_list()
    assert (fast.cpu, fast.memory, fast.performance) == (3, 1536 * 1024**2, 90)
    assert eco.labels == {"camera": "yes", "tier": "low"} and eco.site == "barn"


def test_bad_config_points_at_the_line_with_did_you_mean(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_text("id: edge-1\ncpu: 4\npools:\n  - name: fast\n    performance: 140\n")
    with pytest.raises(UserError) as err:
        load_config(str(path))
    text = err.value.render()
    assert f"{path}:2: cpu: unknown field (did you mean 'cpus'?)" in text
    assert f"{path}:5: pools[0].performance: input should be less than or equal to 100" in text


def test_bad_daemon_id_and_memory_are_clear(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_text("id: edge/1\nmemory: lots\n")
    with pytest.raises(UserError) as err:
        load_config(str(path))
    text = err.value.render()
    assert "id: value error, daemon id 'edge/1' must be letters" in text
    assert "memory: value error, not a memory size: 'lots'" in text


def test_tokens_bind_a_daemon_id_to_the_cluster_secret():
    token = issue_token(SECRET, "edge-1")
    assert check_token(SECRET, "edge-1", token) is None
    assert "no bootstrap token" in check_token(SECRET, "edge-1", None)
    assert "malformed" in check_token(SECRET, "edge-1", "hello")
    assert "issued for daemon 'edge-2'" in check_token(SECRET, "edge-1", issue_token(SECRET, "edge-2"))
    assert "does not match the cluster secret" in check_token(b"x" * 32, "edge-1", token)


def test_secret_file_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read the cluster secret"):
        load_secret(str(tmp_path / "missing"))
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(UserError, match="too short"):
        load_secret(str(short))


HEAVY = ("numba", "pyarrow", "duckdb", "kubernetes", "docker", "psutil")


def _imported(modules: str, watch: tuple[str, ...]) -> list[str]:
    code = (f"import sys, json; import {modules};"
            f"print(json.dumps(sorted(m for m in {watch!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_daemon_never_imports_heavy_dependencies():
    everything = ("zflow.daemon.server, zflow.daemon.instance_deploy, zflow.cli.main, zflow.cli.daemon, "
                  "zflow.daemon.runner, zflow.scheduler.service")
    assert _imported(everything, HEAVY) == []
    # the long-running process (exec'd after validation) does not even carry pydantic or numpy
    assert _imported("zflow.daemon.__main__, zflow.daemon.runner", (*HEAVY, "pydantic", "numpy", "yaml")) == []


def test_token_file_errors_are_clear(tmp_path):
    cfg = load_config(None, {"token_file": str(tmp_path / "nope")})
    with pytest.raises(UserError, match="cannot read the bootstrap token"):
        cfg.resolve()


def test_exported_schema_matches_the_model():
    from pathlib import Path

    from zflow.daemon.config import DaemonConfig

    path = Path(__file__).resolve().parent.parent / "descriptors" / "daemon.schema.json"
    assert json.loads(path.read_text()) == DaemonConfig.model_json_schema(), (
        "refresh with: python -c 'from zflow.documents import dump_schema; from zflow.daemon.config import "
        "DaemonConfig; dump_schema(DaemonConfig, \"descriptors/daemon.schema.json\")'")


def test_daemon_run_reports_bad_input_before_starting(tmp_path, cli_env, zflow_cmd):
    bad = tmp_path / "daemon.yaml"
    bad.write_text("id: e1\ncpu: 3\n")
    for args, message in (
        (["--config", str(bad)], f"{bad}:2: cpu: unknown field (did you mean 'cpus'?)"),
        (["--id", "e1", "--token-file", str(tmp_path / "nope")], "cannot read the bootstrap token"),
        (["--id", "e1", "--secret-file", str(tmp_path / "nope")], "cannot read the cluster secret"),
    ):
        proc = subprocess.run([*zflow_cmd, "daemon", "run", "--data-dir", str(tmp_path / "d"), *args],
                              env=cli_env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_second_daemon_with_the_same_id_is_refused(router, tmp_path, cli_env, zflow_cmd):
    from daemon_helpers import in_process_daemons

    cfg = tmp_path / "twin.yaml"
    cfg.write_text("id: twin\nzenoh: {lease_ms: 500}\n")  # waits one lease for a stale token
    with in_process_daemons(router, tmp_path, "twin"):
        proc = subprocess.run([*zflow_cmd, "daemon", "run", "--config", str(cfg), "--data-dir", str(tmp_path / "t2"),
                               "--connect", router.endpoint], env=cli_env, capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 2
    assert "a daemon with id 'twin' is already running on this Zenoh network" in proc.stderr
