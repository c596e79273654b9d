"""Calling Ryax handlers: type checks both ways, lists of outputs, RyaxException, triggers."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from zflow.workflows.action import load_action
from zflow.workflows.handlers import (
    Handler,
    RyaxException,
    StepFailure,
    TriggerService,
    load_trigger,
)

META = """\
apiVersion: "ryax.tech/v2.0"
kind: {kind}
spec:
  id: {id}
  human_name: Test action
  type: python3
  version: "1.0"
  inputs:
    - {{name: n, human_name: N, help: n, type: integer}}
    - {{name: scale, human_name: S, help: s, type: float, default_value: 2}}
    - {{name: mode, human_name: M, help: m, type: enum, enum_values: [a, b], default_value: a}}
    - {{name: note, human_name: Note, help: note, type: string, optional: true}}
  outputs:
    - {{name: y, human_name: Y, help: y, type: float}}
    - {{name: label, human_name: L, help: l, type: string}}
"""


def action(tmp_path: Path, code: str, kind: str = "Processor", name: str = "act") -> Any:
    d = tmp_path / name
    d.mkdir()
    (d / "ryax_metadata.yaml").write_text(META.format(kind=kind, id=f"t-{name}"))
    fname = "ryax_run.py" if kind == "Source" else "ryax_handler.py"
    (d / fname).write_text(textwrap.dedent(code))
    return load_action(d)


def test_handler_defaults_logs_and_checks(tmp_path: Path) -> None:
    h = Handler(action(tmp_path, """
        import logging
        def handle(inputs):
            print("got", inputs["n"])
            logging.getLogger("x").info("scaled")
            return {"y": inputs["n"] * inputs["scale"], "label": inputs["mode"] + str(inputs["note"])}
    """))
    rows, logs = h({"n": 3})
    assert rows == [{"y": 6.0, "label": "aNone"}]
    assert "got 3" in logs and "scaled" in logs
    with pytest.raises(StepFailure, match="input 'n' must be of type integer"):
        h({"n": "3"})
    with pytest.raises(StepFailure, match="'c' is not one of"):
        h({"n": 1, "mode": "c"})
    with pytest.raises(StepFailure, match="input 'n' has no value"):
        h({})


def test_outputs_checked_and_lists(tmp_path: Path) -> None:
    h = Handler(action(tmp_path, """
        def handle(inputs):
            n = inputs["n"]
            if n == 0:
                return {"y": 1.0, "label": 5}
            if n == 1:
                return {"y": 1.0}
            if n == 2:
                return {"y": 1, "label": "x", "lable": "typo"}
            return [{"y": i, "label": str(i)} for i in range(n)]
    """))
    with pytest.raises(StepFailure, match="output 'label' must be of type string"):
        h({"n": 0})
    with pytest.raises(StepFailure, match="did not return output 'label'"):
        h({"n": 1})
    with pytest.raises(StepFailure, match=r"undeclared output 'lable'.*did you mean 'label'"):
        h({"n": 2})
    rows, _ = h({"n": 3})
    assert [r["y"] for r in rows] == [0.0, 1.0, 2.0]


def test_ryax_exception_user_defined_and_ours(tmp_path: Path) -> None:
    h = Handler(action(tmp_path, """
        from dataclasses import dataclass

        @dataclass
        class RyaxException(Exception):
            message: str
            code: int

        def handle(inputs):
            if inputs["n"] < 0:
                raise RyaxException(message="negative", code=404)
            return 1 / inputs["n"]
    """))
    with pytest.raises(StepFailure) as exc:
        h({"n": -1})
    assert exc.value.message == "negative" and exc.value.code == 404
    with pytest.raises(StepFailure, match="ZeroDivisionError"):
        h({"n": 0})
    assert RyaxException("m", 400).code == 400


def test_trigger_service_create_run(tmp_path: Path) -> None:
    a = action(tmp_path, """
        async def run(service, input_values):
            for i in range(input_values["n"]):
                await service.create_run({"y": i, "label": "tick"})
            await service.create_run({"y": "bad", "label": "x"})
    """, kind="Source", name="trig")
    fn = load_trigger(a)
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    service = TriggerService(a, {"n": 2}, runs.append, errors.append)
    asyncio.run(fn(service, {"n": 2}))
    assert runs == [{"y": 0.0, "label": "tick"}, {"y": 1.0, "label": "tick"}]
    assert len(errors) == 1 and "output 'y' must be of type float" in errors[0]
    assert set(service.get_output_definitions()) == {"y", "label"}


def test_handler_without_handle_function(tmp_path: Path) -> None:
    # a missing or sync entry point is refused when the action loads (see test_action_errors); one
    # bound in a way the source cannot show is still checked when it is imported
    with pytest.raises(StepFailure, match="has no handle"):
        Handler(action(tmp_path, "handle = None\n"))
    with pytest.raises(StepFailure, match="must define 'async def run"):
        load_trigger(action(tmp_path, "def make():\n    return None\n\nrun = make()\n", kind="Source", name="t2"))


def test_emit_every_cron_and_interval() -> None:
    import importlib.util
    import time

    from zflow.workflows.library import BUILTIN

    spec = importlib.util.spec_from_file_location("emit_every_run", BUILTIN / "emit-every" / "ryax_run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.parse_interval("100ms") == pytest.approx(0.1) and mod.parse_interval("2m") == 120
    t = time.struct_time((2026, 1, 5, 6, 30, 0, 0, 5, 0))  # Monday 06:30
    assert mod.cron_matches("*/15 6 * * 1-5", t) and not mod.cron_matches("0 6 * * *", t)
    with pytest.raises(ValueError):
        mod.cron_matches("* * *", t)
