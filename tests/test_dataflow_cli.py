"""``zflow check | graph | schema`` through the real command line (``python -m zflow``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from zflow.cli.flow import SCHEMAS
from zflow.dataflow import Graph, compile_file, models
from zflow.dataflow.render import render

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "tests" / "flows"


def _run(zflow_cmd, cli_env, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*zflow_cmd, *args], capture_output=True, text=True, env=cli_env, cwd=cwd, timeout=60)


def test_check_ok_exits_0(zflow_cmd, cli_env):
    r = _run(zflow_cmd, cli_env, "check", str(FLOWS / "pipeline.yaml"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok: pipeline: 6 nodes, 5 links"


def test_check_prints_every_error_and_exits_2(zflow_cmd, cli_env, tmp_path):
    flow = tmp_path / "bad.yaml"
    flow.write_text(
        "name: bad\n"
        "sources:\n  - {id: s, operator: sensor-sim, outputs: [{id: o, type: json}]}\n"
        "sinks:\n  - {id: k, operator: prnt, inputs: [{id: i, type: bytes}]}\n"
        "links:\n  - {from: {node: s, output: o}, to: {node: k, input: i}}\n"
        "  - {from: {node: ss, output: o}, to: {node: k, input: i}}\n")
    r = _run(zflow_cmd, cli_env, "check", str(flow))
    assert r.returncode == 2
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "3 errors:"
    assert f"  {flow}:5: sinks[0].operator: unknown operator 'prnt'" in r.stderr
    assert f"  {flow}:7: links[0]: type mismatch: s/o sends json but k/i expects bytes" in r.stderr
    assert f"  {flow}:8: links[1].from.node: unknown node 'ss' (did you mean 's'?)" in r.stderr


def test_check_with_var_overrides(zflow_cmd, cli_env):
    base = FLOWS / "zenoh_flow"
    r = _run(zflow_cmd, cli_env, "check", str(base / "flow.yaml"))
    assert r.returncode == 2 and "variable 'BASE_DIR' has no value (pass --var BASE_DIR=...)" in r.stderr
    r = _run(zflow_cmd, cli_env, "check", str(base / "flow.yaml"), "--var", f"BASE_DIR={base}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok: zf-python: 4 nodes, 3 links"


def test_bad_var_argument_is_a_usage_error(zflow_cmd, cli_env):
    r = _run(zflow_cmd, cli_env, "check", str(FLOWS / "pipeline.yaml"), "--var", "PERIOD")
    assert r.returncode == 2
    assert "--var 'PERIOD': expected KEY=VALUE" in r.stderr


def test_missing_file_exits_2(zflow_cmd, cli_env, tmp_path):
    r = _run(zflow_cmd, cli_env, "check", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "nope.yaml: file not found" in r.stderr


@pytest.mark.parametrize(("fmt", "expected"), [
    ("text", "stage.win/agg -> stage.detect/agg"),
    ("mermaid", "flowchart LR"),
    ("dot", 'digraph "pipeline" {'),
    ("json", '"flow": "pipeline"'),
])
def test_graph_formats(zflow_cmd, cli_env, fmt, expected):
    r = _run(zflow_cmd, cli_env, "graph", str(FLOWS / "pipeline.yaml"), "--format", fmt, "--instance", "g1")
    assert r.returncode == 0, r.stderr
    assert expected in r.stdout
    assert "zflow/data/pipeline/g1/clean/out" in r.stdout or fmt == "mermaid"


def test_render_text_shows_nodes_ports_keys_and_qos():
    g = compile_file(FLOWS / "pipeline.yaml", instance="r")
    out = render(g, "text")
    assert out.splitlines()[0] == "flow pipeline (instance r): 6 nodes, 5 links"
    assert "  clean [operator] python " in out and "clean.py:Clean" in out
    assert "    inputs:  rows:json, raw" in out
    assert "    outputs: out:json -> zflow/data/pipeline/r/clean/out" in out
    assert "    inputs:  tick <- timer 100 ms" in out
    assert '    deploy:  {"daemon": "edge-1"}' in out
    assert "  remote [source] zenoh-subscriber raw=site1/sensors/**" in out
    assert "    key: zflow/data/pipeline/r/remote/raw  qos: queue_size=16, policy=drop_oldest, priority=2" in out
    mermaid = render(g, "mermaid")
    assert 'n_stage_win -->|"agg → agg (queue_size=16)"| n_stage_detect' in mermaid
    dot = render(g, "dot")
    assert dot.count("\" -> \"") == 5 + 1  # five links and one timer edge


def test_graph_json_round_trips(zflow_cmd, cli_env):
    r = _run(zflow_cmd, cli_env, "graph", str(FLOWS / "pipeline.yaml"), "--format", "json", "--instance", "j")
    assert r.returncode == 0, r.stderr
    assert Graph.from_dict(json.loads(r.stdout)) == compile_file(FLOWS / "pipeline.yaml", instance="j")


def test_schema_export(zflow_cmd, cli_env, tmp_path):
    r = _run(zflow_cmd, cli_env, "schema", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for name in SCHEMAS:
        schema = json.loads((tmp_path / f"{name}.schema.json").read_text())
        assert schema["type"] == "object"
    flow = json.loads((tmp_path / "dataflow.schema.json").read_text())
    assert {"name", "vars", "sources", "operators", "sinks", "links", "mapping", "qos"} <= set(flow["properties"])


def test_committed_schemas_are_up_to_date():
    for name, model in SCHEMAS.items():
        committed = json.loads((ROOT / "descriptors" / f"{name}.schema.json").read_text())
        assert committed == getattr(models, model).model_json_schema(), f"run `zflow schema` ({name})"
