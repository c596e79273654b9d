"""Bad workflow files get located errors: cycles, triggers, bindings, types, names."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from zflow.errors import UserError
from zflow.workflows.workflow import load_workflow

ACTIONS = Path(__file__).parent / "workflow_data" / "actions"

GOOD = f"""\
apiVersion: ryax.tech/v2.0
kind: Workflows
spec:
  id: wf
  actions_path: [{ACTIONS}]
  actions:
    - id: tick
      from: emit-every
      inputs: {{interval: 1s, count: 3}}
    - id: a
      from: add
      inputs:
        x: {{reference_value: tick.index}}
    - id: b
      from: add
      inputs:
        x: {{reference_value: a.y}}
        plus: 10
      constraints: {{site_list: [edge], arch_list: [arm64]}}
      objectives: {{performance: 50, energy: 100, cost: 30}}
      execution: on-demand
      idle_retention: 5s
  results:
    - {{key: total, value: b.y}}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "wf.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(UserError) as exc:
        load_workflow(write(tmp_path, text))
    return exc.value.render()


def test_good_workflow_plan(tmp_path: Path) -> None:
    wf = load_workflow(write(tmp_path, GOOD))
    assert wf.name == "wf" and wf.trigger == "tick" and list(wf.steps) == ["tick", "a", "b"]
    b = wf.steps["b"]
    assert b.parents == ["a"] and str(b.refs["x"]) == "a.y" and b.static == {"plus": 10}
    assert b.execution == "on-demand" and b.idle_retention_s == 5 and b.site == "edge"
    assert wf.results[0][0] == "total"


def test_reference_to_an_ancestor_does_not_add_a_join(tmp_path: Path) -> None:
    text = GOOD.replace("plus: 10", "plus: {reference_value: tick.index}")
    wf = load_workflow(write(tmp_path, text))
    assert wf.steps["b"].parents == ["a"]  # tick.index travels in a's run context


CASES = [
    # (name, old, new, expected fragments)
    ("no trigger", "from: emit-every\n      inputs: {interval: 1s, count: 3}",
     "from: add\n      inputs: {x: 1}", ["exactly one trigger", "found none"]),
    ("two triggers", "    - id: a\n      from: add\n      inputs:\n        x: {reference_value: tick.index}",
     "    - id: a\n      from: emit-every", ["exactly one trigger", "'tick', 'a'"]),
    ("cycle", "x: {reference_value: tick.index}", "x: {reference_value: b.y}", ["cycle between steps", "a -> b -> a"]),
    ("unbound required input", "        x: {reference_value: a.y}\n", "", ["required input 'x'", "has no value", "wf.yaml:16"]),
    ("static type mismatch", "plus: 10", "plus: ten", ["inputs.plus", "expected an integer", "'ten'"]),
    ("reference type mismatch", "count: 3}", "count: 3}\n    - id: f\n      from: count-bytes\n      inputs:\n"
     "        data: {reference_value: a.y}", ["type mismatch", "a.y is integer", "'data' is file"]),
    ("unknown step", "reference_value: a.y", "reference_value: aa.y", ["unknown step 'aa'", "did you mean 'a'"]),
    ("unknown output", "reference_value: a.y", "reference_value: a.yy", ["has no output 'yy'", "did you mean 'y'"]),
    ("unknown action", "from: add\n      inputs:\n        x: {reference_value: a.y}",
     "from: addd\n      inputs:\n        x: {reference_value: a.y}", ["unknown action 'addd'", "did you mean 'add'"]),
    ("unknown input", "plus: 10", "pluss: 10", ["has no input 'pluss'", "did you mean 'plus'"]),
    ("bad enum value", "count: 3}", "count: 3}\n    - id: z\n      from: zscore-detector\n      inputs:\n"
     "        table: []\n        column: v\n        method: zscor", ["not one of", "did you mean 'zscore'"]),
    ("duplicate step", "    - id: b\n", "    - id: a\n", ["duplicate step id 'a'"]),
    ("constraints typo", "site_list: [edge]", "sites: [edge]", ["constraints.sites", "unknown field", "site_list"]),
    ("negative objective", "energy: 100", "energy: -1", ["objectives.energy", "greater than or equal to 0"]),
    ("bad version", "from: add\n      inputs:\n        x: {reference_value: a.y}",
     "from: add\n      version: \"9.9\"\n      inputs:\n        x: {reference_value: a.y}", ["no version '9.9'", "available: 1.0"]),
    ("trigger with reference", "inputs: {interval: 1s, count: 3}", "inputs: {interval: 1s, count: {reference_value: a.y}}",
     ["trigger starts the workflow", "static values"]),
    ("unknown result", "value: b.y", "value: c.y", ["results[0].value", "unknown step 'c'"]),
    ("malformed reference", "reference_value: a.y", "reference_value: a", ["must be step.output"]),
    ("streams_to unknown", "      execution: on-demand", "      streams_to: [zz]\n      execution: on-demand",
     ["streams_to[0]", "unknown step 'zz'"]),
    ("execution on trigger", "inputs: {interval: 1s, count: 3}", "inputs: {interval: 1s, count: 3}\n      execution: warm",
     ["execution is for processors"]),
    ("bad execution", "execution: on-demand", "execution: lazy", ["execution", "'warm' or 'on-demand'"]),
    ("unknown spec field", "  results:", "  resuls:", ["unknown field", "did you mean 'results'"]),
    ("bad retention", "idle_retention: 5s", "idle_retention: 5 parsecs", ["idle_retention", "s, m, h, d"]),
    ("own output", "x: {reference_value: a.y}\n        plus", "x: {reference_value: b.y}\n        plus",
     ["cannot use its own output"]),
    ("bad static file", "count: 3}", "count: 3}\n    - id: f\n      from: count-bytes\n      inputs:\n        data: 42",
     ["inputs.data", "expected a path"]),
    ("version not quoted", "from: add\n      inputs:\n        x: {reference_value: a.y}",
     "from: add\n      version: 1.0\n      inputs:\n        x: {reference_value: a.y}", ["quote it"]),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_workflow(tmp_path: Path, name: str, old: str, new: str, expected: list[str]) -> None:
    assert old in GOOD, name
    msg = errors(tmp_path, GOOD.replace(old, new, 1))
    assert "wf.yaml" in msg
    for part in expected:
        assert part in msg, f"{part!r} not in:\n{msg}"


def test_action_directory_path_and_bad_action_dir(tmp_path: Path) -> None:
    ok = GOOD.replace("from: add\n      inputs:\n        x: {reference_value: tick", f"from: {ACTIONS / 'add'}\n      inputs:\n        x: {{reference_value: tick")
    assert load_workflow(write(tmp_path, ok)).steps["a"].action.id == "add"
    bad = GOOD.replace("from: add\n      inputs:\n        x: {reference_value: tick", "from: ./nowhere\n      inputs:\n        x: {reference_value: tick")
    assert "not a valid action" in errors(tmp_path, bad)


def test_cli_check_and_compile(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    import yaml

    p = write(tmp_path, GOOD)
    ok = subprocess.run([*zflow_cmd, "workflow", "check", str(p)], capture_output=True, text=True, env=cli_env)
    assert ok.returncode == 0 and "3 steps" in ok.stdout
    out = subprocess.run([*zflow_cmd, "workflow", "compile", str(p)], capture_output=True, text=True, env=cli_env)
    assert out.returncode == 0, out.stderr
    flow = yaml.safe_load(out.stdout)
    assert [n["id"] for n in flow["sources"]] == ["tick"]
    assert [n["id"] for n in flow["operators"]] == ["a"] and [n["id"] for n in flow["sinks"]] == ["b"]
    b = flow["sinks"][0]
    assert b["deploy"]["site"] == ["edge"] and b["deploy"]["arch"] == ["arm64"]
    assert b["deploy"]["objectives"] == {"performance": 50.0, "energy": 100.0, "cost": 30.0}
    assert b["configuration"]["execution"] == "on-demand" and b["configuration"]["refs"] == {"x": "a.y"}
    assert set(b["deploy"]) <= {"site", "arch", "pool", "labels", "objectives", "resources"}
    assert {"from": {"node": "a", "output": "out"}, "to": {"node": "b", "input": "a"}} in flow["links"]
    bad = write(tmp_path, GOOD.replace("reference_value: a.y", "reference_value: a.z"))
    res = subprocess.run([*zflow_cmd, "workflow", "check", str(bad)], capture_output=True, text=True, env=cli_env)
    assert res.returncode == 2 and "has no output 'z'" in res.stderr and "Traceback" not in res.stderr


def test_dynamic_outputs_defined_by_the_workflow(tmp_path: Path) -> None:
    form = Path(__file__).parent / "workflow_data" / "form.yaml"
    wf = load_workflow(form)
    assert [o.name for o in wf.steps["form"].action.spec.outputs] == ["name", "age"]
    text = form.read_text().replace("actions_path: [actions]", f"actions_path: [{ACTIONS}]")
    bad = text.replace("reference_value: form.name", "reference_value: form.nme")
    assert "has no output 'nme'" in errors(tmp_path, bad) and "did you mean 'name'" in errors(tmp_path, bad)
    mismatch = text.replace("reference_value: form.name", "reference_value: form.age")
    assert "type mismatch: form.age is integer" in errors(tmp_path, mismatch)
    not_dynamic = GOOD.replace("      inputs: {interval: 1s, count: 3}",
                               "      inputs: {interval: 1s, count: 3}\n      dynamic_outputs: [{name: x, type: string}]")
    assert "has no dynamic outputs" in errors(tmp_path, not_dynamic)
