"""Issue 8, observation 11: every YAML the project reads goes through one loader that refuses
duplicate keys (naming both lines), bounds alias expansion and nesting, and never echoes a huge
value; numeric CLI options refuse nan, inf and out-of-range numbers with exit code 2."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from zflow.cli.main import main
from zflow.documents import ALIAS_BUDGET, parse_text
from zflow.errors import UserError

DATA = Path(__file__).parent / "workflow_data"

TIMER_FLOW = """\
name: dup
sources:
  - id: tick
    operator: timer
    configuration: {period_ms: 10, count: 3}
    configuration: {count: 1000000}
    outputs: [out]
sinks:
  - id: sink
    operator: ./sink.py:S
    inputs: [in]
links:
  - {from: {node: tick, output: out}, to: {node: sink, input: in}}
"""
SINK = "from zflow.runtime.api import Sink\n\nclass S(Sink):\n    inputs = ('in',)\n\n" \
       "    def on_input(self, port, value, ctx):\n        pass\n"


def _cli(zflow_cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*zflow_cmd, *args], capture_output=True, text=True, env=env, timeout=60)


def _dup_descriptor(tmp: Path) -> tuple[list[str], Path, str, int, int]:
    (tmp / "sink.py").write_text(SINK)
    (tmp / "flow.yaml").write_text(TIMER_FLOW)
    return ["check", str(tmp / "flow.yaml")], tmp / "flow.yaml", "sources[0].configuration", 5, 6


def _dup_workflow(tmp: Path) -> tuple[list[str], Path, str, int, int]:
    shutil.copytree(DATA / "actions", tmp / "actions")
    text = (DATA / "three-steps.yaml").read_text()
    text = text.replace("      inputs: {x: {reference_value: a.y}, plus: 10}\n",
                        "      inputs: {x: {reference_value: a.y}, plus: 10}\n      from: text-len\n")
    (tmp / "wf.yaml").write_text(text)
    return ["workflow", "check", str(tmp / "wf.yaml")], tmp / "wf.yaml", "spec.actions[2].from", 15, 17


def _dup_action(tmp: Path) -> tuple[list[str], Path, str, int, int]:
    shutil.copytree(DATA / "actions" / "add", tmp / "add")
    meta = tmp / "add" / "ryax_metadata.yaml"
    meta.write_text(meta.read_text().replace('  version: "1.0"\n', '  version: "1.0"\n  type: nodejs\n'))
    return ["action", "check", str(tmp / "add")], meta, "spec.type", 6, 8


def _dup_daemon_config(tmp: Path) -> tuple[list[str], Path, str, int, int]:
    cfg = tmp / "daemon.yaml"
    cfg.write_text("id: edge-1\nsite: field\ncpus: 2\nsite: barn\n")
    return ["daemon", "run", "--config", str(cfg), "--data-dir", str(tmp / "d")], cfg, "site", 2, 4


def _dup_dataset(tmp: Path) -> tuple[list[str], Path, str, int, int]:
    cfg = tmp / "ds.yaml"
    cfg.write_text(f"schema: lab.json\nlocations: [file://{tmp}/a]\nlocations: [file://{tmp}/b]\n")
    return ["tsdb", "stats", str(cfg)], cfg, "locations", 2, 3


def _dup_schema_json(tmp: Path) -> tuple[list[str], Path, str, int, int]:
    (tmp / "ds.yaml").write_text(f"schema: lab.json\nlocations: [file://{tmp}/a]\n")
    schema = tmp / "lab.json"
    schema.write_text('{\n  "name": "lab",\n  "columns": [\n    {"name": "t", "type": "u32",\n'
                      '     "type": "f64"}\n  ]\n}\n')
    return ["tsdb", "stats", str(tmp / "ds.yaml")], schema, "columns[0].type", 4, 5


@pytest.mark.parametrize("make", [_dup_descriptor, _dup_workflow, _dup_action, _dup_daemon_config,
                                  _dup_dataset, _dup_schema_json])
def test_duplicate_key_names_both_lines_everywhere(make, tmp_path: Path, zflow_cmd: list[str],
                                                   cli_env: dict[str, str]) -> None:
    args, file, path, first, second = make(tmp_path)
    res = _cli(zflow_cmd, cli_env, *args)
    assert res.returncode == 2, res.stdout + res.stderr
    key = path.rsplit(".", 1)[-1]
    assert (f"{file}:{second}: {path}: duplicate key '{key}': set at line {first} and again at line "
            f"{second}; expected each key once") in res.stderr
    assert "Traceback" not in res.stderr


def test_duplicate_count_no_longer_silently_wins() -> None:
    """The issue's case: `count: 3` replaced by a second `configuration` with `count: 1000000`."""
    with pytest.raises(UserError) as err:
        parse_text(TIMER_FLOW, "flow.yaml")
    assert len(err.value.problems) == 1 and err.value.problems[0].line == 6


def test_every_duplicate_is_reported_at_once() -> None:
    with pytest.raises(UserError) as err:
        parse_text("a: 1\nb: {x: 1, y: 2, x: 3}\na: 2\n", "f.yaml")
    assert [(p.line, p.path) for p in err.value.problems] == [(2, ("b", "x")), (3, ("a",))]


def test_merge_keys_are_not_duplicates_and_explicit_keys_win() -> None:
    doc = parse_text("base: &b {x: 1, y: 2}\nmore: &m {y: 5, z: 9}\nm:\n  <<: [*b, *m]\n  x: 3\n", "f.yaml")
    assert doc.data["m"] == {"x": 3, "y": 2, "z": 9}
    assert doc.line_of(("m", "x")) == 5 and doc.line_of(("m", "z")) == 2  # where each value is written


def _bomb(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for i in range(levels - 1):
        name = chr(ord("b") + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
        prev = name
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_with_bounded_memory() -> None:
    text = _bomb(9)  # 9**9 = 387 million strings once expanded
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as err:
            parse_text(text, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, f"parsing the bomb allocated {peak / 2**20:.1f} MiB"
    [problem] = err.value.problems
    # refused at the first level whose expansion passes the budget: 9**6 = 531441 strings
    assert problem.file == "bomb.yaml" and problem.line == 6 and problem.path == ("f",)
    assert f"expected at most {ALIAS_BUDGET:,} values added by aliases" in problem.message
    assert "aliases expand this value to 597,871 values" in problem.message


def test_alias_bomb_via_cli(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb(9) + "name: x\n")
    res = _cli(zflow_cmd, cli_env, "check", str(bomb))
    assert res.returncode == 2 and f"{bomb}:6: f: aliases expand this value to" in res.stderr, res.stderr


def test_small_alias_use_is_fine() -> None:
    doc = parse_text("q: &q {queue_size: 8}\nlinks:\n" + "".join(f"  - {{qos: *q, n: {i}}}\n" for i in range(50)))
    assert all(link["qos"] == {"queue_size": 8} for link in doc.data["links"])


def test_recursive_anchor_and_deep_nesting_are_errors_not_crashes(tmp_path: Path, zflow_cmd: list[str],
                                                                   cli_env: dict[str, str]) -> None:
    with pytest.raises(UserError, match=r"an alias refers to the value that contains it"):
        parse_text("a: &a [1, *a]\n", "f.yaml")
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # libyaml's recursive composer crashed here
    res = _cli(zflow_cmd, cli_env, "check", str(deep))
    assert res.returncode == 2 and f"{deep}:1: nested more than 100 levels deep" in res.stderr, res.stderr
    with pytest.raises(UserError, match="nested more than 100 levels deep"):
        parse_text("[" * 300 + "]" * 300, "f.yaml")


def test_json_numbers_read_as_json_does() -> None:
    """`JSON is YAML` must hold for what json.dumps writes (1e-05 was read as a string)."""
    rng = random.Random(8)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 12) for _ in range(500)]
    values += [1e-05, 1e22, -2.5e-300, 0.0, 3]
    assert parse_text(json.dumps({"v": values})).data["v"] == values


def _in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _var_flow(tmp: Path) -> Path:
    """The timer flow with its period from ``{{ P }}`` (line 6)."""
    (tmp / "sink.py").write_text(SINK)
    flow = tmp / "flow.yaml"
    flow.write_text("name: v\nvars: {P: 10}\n" + TIMER_FLOW.replace("name: dup\n", "").replace(
        "    configuration: {period_ms: 10, count: 3}\n    configuration: {count: 1000000}\n",
        "    configuration: {period_ms: '{{ P }}', count: 3}\n"))
    return flow


def test_huge_var_value_is_cut_in_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = _var_flow(tmp_path)
    big = "x" * 2_000_000
    code, err = _in_process(capsys, "check", str(flow), "--var", f"P={big}")
    assert code == 2
    assert len(err) < 1000, f"the message is {len(err):,} characters long"
    assert f"{flow}:6: sources[0].configuration.period_ms: timer: period_ms: input should be a valid number" in err
    assert "(got 'xxxxxxxx" in err and "(2,000,000 characters)" in err
    code, err = _in_process(capsys, "check", str(flow), "--var", big)  # no '=': the item is echoed
    assert code == 2 and len(err) < 1000 and "expected KEY=VALUE" in err and "(2,000,000 characters)" in err
    code, err = _in_process(capsys, "graph", str(flow), "--format", big)  # argparse's own message
    assert code == 2 and len(err) < 2000 and "invalid choice" in err


def test_var_nan_and_infinity_are_not_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """json.loads reads NaN and Infinity: a `--var` must not turn them into a float a timer waits on."""
    flow = _var_flow(tmp_path)
    for value in ("NaN", "Infinity", "-Infinity", "inf", ".inf"):
        code, err = _in_process(capsys, "check", str(flow), "--var", f"P={value}")
        assert code == 2, err
        assert f"{flow}:6: sources[0].configuration.period_ms: timer: period_ms: input should be " in err
        assert f"(got '{value}')" in err and ("finite number" in err or "valid number" in err), err
    assert _in_process(capsys, "check", str(flow), "--var", "P=2.5")[0] == 0


NUMERIC_OPTIONS = [
    (("run", "FLOW"), "--duration", "a finite number of seconds greater than 0", ("nan", "inf", "-1", "0")),
    (("demo",), "--duration", "a finite number of seconds greater than 0", ("nan", "-inf", "-3")),
    (("demo",), "--speed", "a finite number, 0 or more", ("nan", "inf", "-1")),
    (("demo",), "--motes", "a whole number, 1 or more", ("nan", "0", "-2", "1.5")),
    (("demo",), "--epochs", "a whole number, 1 or more", ("inf", "0")),
    (("workflow", "run", "WF"), "--duration", "a finite number of seconds greater than 0", ("nan", "inf")),
    (("workflow", "run", "WF"), "--timeout", "a finite number of seconds greater than 0", ("nan", "-5")),
    (("workflow", "run", "WF"), "--runs", "a whole number, 1 or more", ("nan", "0", "-1")),
    (("workflow", "deploy", "WF"), "--timeout", "a finite number of seconds greater than 0", ("inf",)),
    (("instance", "create", "FLOW"), "--timeout", "a finite number of seconds greater than 0", ("nan", "0")),
    (("daemon", "logs", "edge-1"), "--lines", "a whole number, 1 or more", ("nan", "-1")),
    (("tsdb", "query", "ds.yaml"), "--limit", "a whole number, 0 or more", ("-1", "nan", "inf")),
    (("tsdb", "infer", "x.csv"), "-k", "a whole number, 1 or more", ("0", "nan")),
    (("tsdb", "infer", "x.csv"), "-n", "a whole number, 1 or more", ("-6",)),
]


@pytest.mark.parametrize(("command", "option", "expected", "values"), NUMERIC_OPTIONS,
                         ids=[f"{' '.join(c[:2])} {o}" for c, o, _, _ in NUMERIC_OPTIONS])
def test_numeric_options_refuse_nan_inf_and_out_of_range(command, option, expected, values,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for value in values:
        code, err = _in_process(capsys, *command, f"{option}={value}")
        assert code == 2, (option, value)
        assert f"{option}: expected" in err and f"expected {expected}, got '{value}'" in err, err


def test_every_numeric_option_has_a_checked_type() -> None:
    """A new `type=float` option would accept nan again: every number goes through zflow.cli.args."""
    import argparse

    from zflow.cli import args as checked
    from zflow.cli.main import build_parser

    allowed = {checked.seconds, checked.non_negative, checked.positive_int, checked.non_negative_int}
    seen = []

    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{where} {name}")
            elif action.type is not None:
                seen.append((where, action.option_strings, action.type))
    walk(build_parser(), "zflow")
    bad = [(w, o, t) for w, o, t in seen if t in (int, float) or (t not in allowed and callable(t))]
    # `--seed` may be any integer, negative included
    bad = [b for b in bad if b[1] != ["--seed"]]
    assert not bad and len(seen) >= 13, bad


def test_durations_in_descriptors_refuse_nan() -> None:
    from zflow.dataflow.models import parse_seconds

    for value in (math.nan, math.inf, "nan", "infs", -1):
        with pytest.raises(ValueError, match="expected a"):
            parse_seconds(value)
    assert parse_seconds("500ms") == 0.5
