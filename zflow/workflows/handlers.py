"""Calling Ryax handlers: ``ryax_handler.py: handle(inputs) -> dict | list[dict]`` for processors
and publishers, ``ryax_run.py: async run(service, input_values)`` for triggers.

Inputs are checked against the declared types before the call and outputs after it, so a
handler never sees a value of the wrong type and a wrong output fails the run with a message
that names the output, not a traceback three steps later.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import logging
import sys
from collections.abc import Awaitable, Callable
from enum import Enum
from pathlib import Path
from typing import Any

from zflow.workflows.action import Action, ActionIO, IOType


class RyaxException(Exception):
    """Raised by a handler to fail the current run with a message and a code (HTTP-like)."""

    def __init__(self, message: str, code: int = 500):
        super().__init__(message)
        self.message = message
        self.code = code


class StepFailure(Exception):
    """A step failed its run: the message and code end up in the run record."""

    def __init__(self, message: str, code: int = 500):
        super().__init__(message)
        self.message = message
        self.code = code


class RyaxRunStatus(Enum):
    DONE = 1
    ERROR = 2


def load_module(path: Path, name: str) -> Any:
    """Import a handler file under a unique module name; its directory is importable too."""
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StepFailure(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise StepFailure(f"importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _runtime_check(io_: ActionIO, value: Any, where: str) -> Any:
    """Type check of a value crossing a handler boundary (files are local paths here)."""
    t = io_.type
    if value is None:
        if io_.optional:
            return None
        raise StepFailure(f"{where} {io_.name!r} is required but is None")
    ok: bool
    if t in (IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD):
        ok = isinstance(value, str)
    elif t is IOType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is IOType.FLOAT:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif t is IOType.BOOLEAN:
        ok = isinstance(value, bool)
    elif t is IOType.ENUM:
        ok = isinstance(value, str) and value in (io_.enum_values or [])
        if not ok:
            raise StepFailure(f"{where} {io_.name!r}: {value!r} is not one of {io_.enum_values}")
    elif t is IOType.FILE:
        ok = isinstance(value, str | Path) and Path(value).is_file()
        if not ok:
            raise StepFailure(f"{where} {io_.name!r}: {value!r} is not an existing file")
        value = str(value)
    elif t is IOType.DIRECTORY:
        ok = isinstance(value, str | Path) and Path(value).is_dir()
        if not ok:
            raise StepFailure(f"{where} {io_.name!r}: {value!r} is not an existing directory")
        value = str(value)
    elif t is IOType.TABLE:
        ok = (isinstance(value, list) and all(isinstance(r, dict) for r in value)) or (
            isinstance(value, dict) and all(isinstance(c, list) for c in value.values()))
    elif t is IOType.BYTES:
        ok = isinstance(value, bytes | bytearray)
        value = bytes(value) if ok else value
    else:  # pragma: no cover
        ok = True
    if not ok:
        raise StepFailure(f"{where} {io_.name!r} must be of type {t.value}, got {type(value).__name__} {value!r:.60}")
    return value


def check_inputs(action: Action, values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for io_ in action.spec.inputs:
        if io_.name in values:
            out[io_.name] = _runtime_check(io_, values[io_.name], "input")
        elif io_.default_value is not None:
            out[io_.name] = io_.default_value
        elif io_.optional:
            out[io_.name] = None
        else:
            raise StepFailure(f"input {io_.name!r} has no value")
    return out


def check_outputs(action: Action, result: Any) -> list[dict[str, Any]]:
    """Normalise a handler's return value to a list of output dicts, each checked."""
    if result is None:
        result = {}
    rows = result if isinstance(result, list) else [result]
    declared = {o.name: o for o in action.spec.outputs}
    checked = []
    for row in rows:
        if not isinstance(row, dict):
            raise StepFailure(f"handle() must return a dict (or a list of dicts), got {type(row).__name__}")
        out: dict[str, Any] = {}
        for key in row:
            if key not in declared:
                from zflow.errors import did_you_mean

                hint = did_you_mean(key, declared)
                raise StepFailure(f"handle() returned undeclared output {key!r}" + (f" ({hint})" if hint else "")
                                  + f"; declared: {sorted(declared)}")
        for name, io_ in declared.items():
            if name not in row:
                if io_.optional:
                    out[name] = None
                    continue
                raise StepFailure(f"handle() did not return output {name!r}")
            out[name] = _runtime_check(io_, row[name], "output")
        checked.append(out)
    return checked


def _is_ryax_exception(exc: BaseException) -> bool:
    """Ryax users define their own ``RyaxException`` dataclass in the handler: match by shape."""
    return type(exc).__name__ == "RyaxException" and hasattr(exc, "message")


class _LogCapture(logging.Handler):
    def __init__(self, sink: io.StringIO):
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record) + "\n")


@contextlib.contextmanager
def capture_logs() -> Any:
    """Collect a handler's print() and logging output for the run record."""
    buf = io.StringIO()
    handler = _LogCapture(buf)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level or logging.INFO, logging.INFO))
    try:
        with contextlib.redirect_stdout(buf):
            yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class Handler:
    """A processor/publisher handler, loaded once per process (warm) and called per run."""

    def __init__(self, action: Action, module_name: str | None = None):
        self.action = action
        module = load_module(action.handler_file, module_name or f"ryax_handler_{action.id.replace('-', '_').replace('.', '_')}")
        fn = getattr(module, "handle", None)
        if not callable(fn):
            raise StepFailure(f"{action.handler_file} has no handle(inputs) function")
        self.fn: Callable[[dict[str, Any]], Any] = fn

    def __call__(self, inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """Run once: checked inputs in, checked outputs and captured logs out."""
        values = check_inputs(self.action, inputs)
        with capture_logs() as logs:
            try:
                result = self.fn(values)
            except StepFailure:
                raise
            except Exception as exc:
                if _is_ryax_exception(exc):
                    raise StepFailure(str(exc.message), int(getattr(exc, "code", 500) or 500)) from exc  # type: ignore[attr-defined]
                raise StepFailure(f"{type(exc).__name__}: {exc}") from exc
        return check_outputs(self.action, result), logs.getvalue()


class TriggerService:
    """What ``ryax_run.py``'s ``run(service, input_values)`` talks to (RyaxSourceProtocol)."""

    def __init__(self, action: Action, inputs: dict[str, Any],
                 emit: Callable[[dict[str, Any]], Awaitable[None] | None],
                 emit_error: Callable[[str], Awaitable[None] | None] | None = None):
        self.action = action
        self.inputs_values = inputs
        self._emit = emit
        self._emit_error = emit_error
        self.created = 0

    async def create_run(self, data: dict[str, Any], running_time: float = 0.001,
                         status: RyaxRunStatus = RyaxRunStatus.DONE) -> None:
        del running_time
        if status is RyaxRunStatus.ERROR:
            await self.create_run_error()
            return
        # dynamic outputs the workflow did not declare pass unchecked (Ryax forms define them)
        declared = bool(self.action.spec.outputs) or not self.action.spec.dynamic_outputs
        try:
            outputs = check_outputs(self.action, data)[0] if declared else data
        except StepFailure as exc:  # a bad emission is a failed run, the trigger goes on
            await self.create_run_error(f"trigger outputs: {exc.message}")
            return
        self.created += 1
        res = self._emit(outputs)
        if asyncio.iscoroutine(res):
            await res

    async def create_run_error(self, message: str = "the trigger reported an error") -> None:
        if self._emit_error is not None:
            res = self._emit_error(message)
            if asyncio.iscoroutine(res):
                await res

    def get_output_definitions(self) -> dict[str, Any]:
        return {o.name: {"type": o.type.value, "human_name": o.human_name, "help": o.help}
                for o in self.action.spec.outputs}


def load_trigger(action: Action) -> Callable[..., Awaitable[None]]:
    module = load_module(action.handler_file, f"ryax_run_{action.id.replace('-', '_').replace('.', '_')}")
    fn = getattr(module, "run", None)
    if fn is None or not asyncio.iscoroutinefunction(fn):
        raise StepFailure(f"{action.handler_file} must define 'async def run(service, input_values)'")
    return fn


__all__ = ["Handler", "RyaxException", "RyaxRunStatus", "StepFailure", "TriggerService",
           "check_inputs", "check_outputs", "load_trigger"]
