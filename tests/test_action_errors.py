"""Bad ``ryax_metadata.yaml`` files get located errors (file, line, field, did-you-mean)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from zflow.errors import UserError
from zflow.workflows.action import load_action, parse_duration, parse_memory

GOOD = """\
apiVersion: "ryax.tech/v2.0"
kind: Processor
spec:
  id: tfdetection
  human_name: Tag objects
  type: python3
  version: "1.0"
  resources: {cpu: 0.5, memory: 512M, time: 10m, gpu: 1}
  inputs:
    - {name: image, human_name: Image, help: an image, type: file}
    - {name: model, human_name: Model, help: m, type: enum, enum_values: [a, b], default_value: a}
  outputs:
    - {name: tagged, human_name: Tagged, help: out, type: file}
"""


def make(tmp_path: Path, text: str, handler: str | None = "ryax_handler.py") -> Path:
    d = tmp_path / "action"
    d.mkdir(exist_ok=True)
    (d / "ryax_metadata.yaml").write_text(textwrap.dedent(text))
    if handler:
        (d / handler).write_text("async def run(service, input_values):\n    pass\n" if handler == "ryax_run.py"
                                 else "def handle(inputs):\n    return {}\n")
    return d


def errors(d: Path) -> str:
    with pytest.raises(UserError) as exc:
        load_action(d)
    return exc.value.render()


def test_good_action_and_units(tmp_path: Path) -> None:
    a = load_action(make(tmp_path, GOOD))
    assert a.id == "tfdetection" and a.kind == "Processor"
    res = a.spec.resources
    assert res is not None and res.memory_bytes == 512 * 1024**2 and res.time_seconds == 600 and res.gpu == 1
    assert a.input("model").default_value == "a"  # type: ignore[union-attr]
    assert parse_memory("2G") == 2 * 1024**3 and parse_memory("1T") == 1024**4
    assert parse_duration("2h") == 7200 and parse_duration("1d") == 86400 and parse_duration(5) == 5


def test_trigger_alias_is_source(tmp_path: Path) -> None:
    text = GOOD.replace("kind: Processor", "kind: Trigger")
    a = load_action(make(tmp_path, text, handler="ryax_run.py"))
    assert a.kind == "Source" and a.is_trigger


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('apiVersion: "ryax.tech/v2.0"', 'apiVersion: "ryax.tech/v1"', ["ryax_metadata.yaml:1", "apiVersion", "ryax.tech/v2.0"]),
        ("kind: Processor", "kind: Procesor", ["ryax_metadata.yaml:2", "kind", "Processor"]),
        ("id: tfdetection", "id: tf", [":4", "spec.id", "at least 3"]),
        ("id: tfdetection", "id: TF_Detection", [":4", "spec.id", "pattern"]),
        ("id: tfdetection", "id: a-very-long-action-identifier", [":4", "spec.id", "at most 24"]),
        ("  type: python3\n", "  type: python2\n", [":6", "spec.type", "python3"]),
        ('  version: "1.0"', "  version: 1.0", [":7", "spec.version", "quote it"]),
        ("memory: 512M", "memory: 512X", [":8", "spec.resources.memory", "K, M, G, T"]),
        ("time: 10m", "time: 10y", [":8", "spec.resources.time", "s, m, h, d"]),
        ("cpu: 0.5", "cpu: 0.01", [":8", "spec.resources.cpu", "0.1"]),
        ("memory: 512M", "memory: 1M", [":8", "spec.resources.memory", "at least 32M"]),
        ("type: file}\n    - {name: model", "type: picture}\n    - {name: model", [":10", "spec.inputs[0].type", "'string'"]),
        ("enum_values: [a, b], default_value: a", "default_value: a", [":11", "spec.inputs[1]", "enum_values"]),
        ("default_value: a}", "default_value: c}", [":11", "spec.inputs[1]", "not one of"]),
        ("human_name: Tag objects", "human_nme: Tag objects", [":5", "spec.human_nme", "did you mean 'human_name'"]),
        ("{name: image, human_name: Image, help: an image, type: file}",
         "{name: image, humanname: Image, help: an image, type: file}", [":10", "spec.inputs[0].humanname", "human_name"]),
        ("{name: image,", "{name: 'my image',", [":10", "spec.inputs[0].name", "pattern"]),
        ("  outputs:\n", "  dynamic_outputs: true\n  outputs:\n", ["dynamic_outputs", "Source"]),
        ("{name: model,", "{name: image,", [":11", "spec.inputs[1].name", "duplicate input name 'image'"]),
    ],
)
def test_bad_metadata(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert old in GOOD
    msg = errors(make(tmp_path, GOOD.replace(old, new, 1)))
    for part in expected:
        assert part in msg, f"{part!r} not in:\n{msg}"


def test_missing_handler_file_names_the_other(tmp_path: Path) -> None:
    msg = errors(make(tmp_path, GOOD, handler="ryax_run.py"))
    assert "ryax_handler.py is missing" in msg and "found ryax_run.py" in msg


def test_missing_metadata_file(tmp_path: Path) -> None:
    d = tmp_path / "a"
    d.mkdir()
    (d / "ryax_metdata.yaml").write_text("x: 1")
    msg = errors(d)
    assert "ryax_metadata.yaml is missing" in msg and "did you mean 'ryax_metdata.yaml'" in msg


def test_publisher_with_outputs_and_missing_logo(tmp_path: Path) -> None:
    text = GOOD.replace("kind: Processor", "kind: Publisher").replace('version: "1.0"', 'version: "1.0"\n  logo: logo.png')
    msg = errors(make(tmp_path, text))
    assert "Publisher ends a workflow" in msg and "logo file 'logo.png' not found" in msg


def test_several_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("id: tfdetection", "id: X").replace("memory: 512M", "memory: lots")
    msg = errors(make(tmp_path, text))
    assert msg.startswith("2 errors") and "spec.id" in msg and "spec.resources.memory" in msg


def test_cli_action_check(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    good = make(tmp_path, GOOD)
    ok = subprocess.run([*zflow_cmd, "action", "check", str(good)], capture_output=True, text=True, env=cli_env)
    assert ok.returncode == 0 and "ok: tfdetection 1.0 (Processor" in ok.stdout
    (good / "ryax_metadata.yaml").write_text(GOOD.replace("kind: Processor", "kind: Proccessor"))
    bad = subprocess.run([*zflow_cmd, "action", "check", str(good)], capture_output=True, text=True, env=cli_env)
    assert bad.returncode == 2 and "ryax_metadata.yaml:2" in bad.stderr and "Traceback" not in bad.stderr


def test_library_actions_all_valid_and_schema_export(tmp_path: Path, zflow_cmd: list[str],
                                                     cli_env: dict[str, str]) -> None:
    from zflow.workflows.library import BUILTIN

    dirs = sorted(str(p.parent) for p in BUILTIN.glob("*/ryax_metadata.yaml"))
    assert len(dirs) >= 7
    out = subprocess.run([*zflow_cmd, "action", "check", *dirs], capture_output=True, text=True, env=cli_env)
    assert out.returncode == 0, out.stderr
    res = subprocess.run([*zflow_cmd, "action", "schema", "--out", str(tmp_path)], capture_output=True,
                         text=True, env=cli_env)
    assert res.returncode == 0
    import json

    schema = json.loads((tmp_path / "ryax_metadata.schema.json").read_text())
    assert "spec" in schema["properties"]
    assert "spec" in json.loads((tmp_path / "workflow.schema.json").read_text())["properties"]


# ---- issue 8, observation 7: the handler compiles and has its entry point, checked without running it
TRIGGER = GOOD.replace("kind: Processor", "kind: Source").split("  inputs:")[0]


@pytest.mark.parametrize(("meta", "file", "source", "line", "expected"), [
    (GOOD, "ryax_handler.py", "def handle(inputs):\n    return {'tagged': inputs['image']\n", 2,
     "not valid Python: '{' was never closed; found: return {'tagged': inputs['image']"),
    (GOOD, "ryax_handler.py", "x = 1\nreturn x\n", 2, "not valid Python: 'return' outside function"),
    (GOOD, "ryax_handler.py", "def handel(inputs):\n    return {}\n", None,
     "no handle() entry point: expected `def handle(inputs)` at module level, found handel() "
     "(did you mean 'handel'?)"),
    (GOOD, "ryax_handler.py", "import os\n", None,
     "no handle() entry point: expected `def handle(inputs)` at module level, found no function"),
    (GOOD, "ryax_handler.py", "async def handle(inputs):\n    return {}\n", 1,
     "handle() must be a plain (not async) function: expected `def handle(inputs)`, found `async def handle(...)`"),
    (GOOD, "ryax_handler.py", "def handle(inputs, model):\n    return {}\n", 1,
     "handle() has 2 required parameters (inputs, model) but is called with 1: expected `def handle(inputs)`"),
    (GOOD, "ryax_handler.py", "def handle():\n    return {}\n", 1,
     "handle() has 0 positional parameters but is called with 1"),
    (TRIGGER, "ryax_run.py", "def run(service, input_values):\n    pass\n", 1,
     "run() must be an async function: expected `async def run(service, input_values)`, found `def run(...)`"),
    (TRIGGER, "ryax_run.py", "async def main(service):\n    pass\n", None,
     "no run() entry point: expected `async def run(service, input_values)` at module level, found main()"),
    (TRIGGER, "ryax_run.py", "async def run(service):\n    pass\n", 1,
     "run() has 1 positional parameters but is called with 2"),
], ids=["syntax", "compile-time", "misspelt", "no-function", "async-handle", "two-params", "no-params",
        "sync-run", "no-run", "run-one-param"])
def test_handler_is_compiled_and_its_entry_point_checked(tmp_path: Path, zflow_cmd: list[str],
                                                         cli_env: dict[str, str], meta: str, file: str,
                                                         source: str, line: int | None, expected: str) -> None:
    d = make(tmp_path, meta, handler=None)
    (d / file).write_text(source)
    res = subprocess.run([*zflow_cmd, "action", "check", str(d)], capture_output=True, text=True, env=cli_env)
    assert res.returncode == 2, res.stdout
    where = f"{d / file}:{line}" if line else f"{d / file}"
    assert f"{where}: {expected}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "ok:" not in res.stdout


def test_check_never_runs_the_action_code(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    marker = tmp_path / "ran"
    d = make(tmp_path, GOOD, handler=None)
    (d / "ryax_handler.py").write_text(f"open({str(marker)!r}, 'w').close()\nimport sys\nsys.exit(3)\n\n"
                                       "def handle(inputs):\n    return {}\n")
    res = subprocess.run([*zflow_cmd, "action", "check", str(d)], capture_output=True, text=True, env=cli_env)
    assert res.returncode == 0 and res.stdout.startswith("ok: tfdetection"), res.stderr
    assert not marker.exists()


def test_entry_points_bound_other_ways_are_accepted(tmp_path: Path) -> None:
    d = make(tmp_path, GOOD, handler=None)
    for source in ("from helpers import handle\n", "handle = make_handler()\n",
                   "def handle(inputs, *rest, scale=1):\n    return {}\n",
                   "try:\n    import numpy\nexcept ImportError:\n    pass\nelse:\n    def handle(inputs):\n        return {}\n"):
        (d / "ryax_handler.py").write_text(source)
        assert load_action(d).id == "tfdetection"


def test_workflow_check_reports_a_broken_handler(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    import shutil

    data = Path(__file__).parent / "workflow_data"
    shutil.copytree(data / "actions", tmp_path / "actions")
    shutil.copy(data / "three-steps.yaml", tmp_path / "wf.yaml")
    handler = tmp_path / "actions" / "add" / "ryax_handler.py"
    handler.write_text(handler.read_text().replace("return {", "return {{"))
    res = subprocess.run([*zflow_cmd, "workflow", "check", str(tmp_path / "wf.yaml")], capture_output=True,
                         text=True, env=cli_env)
    assert res.returncode == 2 and f"{handler}:3: not valid Python" in res.stderr, res.stderr
