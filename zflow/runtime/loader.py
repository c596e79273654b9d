"""Resolving what a node runs (a Python file, ``module:Class``, a built-in) into a node class."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from zflow.dataflow.builtins import BUILTINS
from zflow.dataflow.graph import NodeSpec, RunSpec
from zflow.errors import Problem, UserError, did_you_mean
from zflow.runtime.api import Node

_BRIDGES = {"zenoh-subscriber": "zenoh-subscribe", "zenoh-publisher": "zenoh-publish"}


def builtins() -> dict[str, str]:
    return BUILTINS


def _load_file(path: str) -> ModuleType:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{path}: operator file not found")
    name = "zflow_user_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12] + "_" + file.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(file.parent.resolve())
    if parent not in sys.path:  # sibling imports (helpers next to the operator) work
        sys.path.insert(0, parent)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:  # the user's file, not the runtime: no traceback
        del sys.modules[name]
        raise UserError(Problem(exc.msg, file=exc.filename or path, line=exc.lineno)) from None
    return module


def _pick(module: ModuleType, attr: str | None, where: str) -> type[Node]:
    if attr:
        obj: Any = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                hint = did_you_mean(part, [n for n in dir(obj) if not n.startswith("_")])
                raise UserError(f"{where}: has no attribute {attr!r}" + (f" ({hint})" if hint else ""))
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, Node):
            return obj
        raise UserError(f"{where}:{attr} is not a zflow node (a Source/Operator/Sink subclass or a "
                        "function decorated with @zflow.source/@zflow.operator/@zflow.sink)")
    found = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Node) and obj.__module__ == module.__name__
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"{where}: defines no zflow node (decorate a function with @zflow.operator, "
                        "or subclass zflow.Operator)")
    names = ", ".join(sorted(c.__name__ for c in found))
    raise UserError(f"{where}: defines several nodes ({names}); name one as '{where}:Name'")


def load_node_class(run: RunSpec, base_dir: str | None = None) -> type[Node]:
    """The class a node runs; user mistakes become UserErrors, user code errors propagate.

    ``pkg.mod:Class`` targets are also looked up next to the descriptor (``base_dir``), as the
    checker does."""
    if run.kind in _BRIDGES:
        run = RunSpec(kind="builtin", target=_BRIDGES[run.kind])
    if run.kind == "builtin":
        table = builtins()
        if run.target not in table:
            hint = did_you_mean(run.target, table)
            raise UserError(f"unknown built-in operator {run.target!r}" + (f" ({hint})" if hint else ""))
        module_name, _, attr = table[run.target].partition(":")
        return _pick(importlib.import_module(module_name), attr or None, run.target)
    target = run.target
    if target.endswith(".py") or "/" in target:
        return _pick(_load_file(target), run.attr, target)
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise UserError(f"operator module {target!r} not found") from None
        raise
    return _pick(module, run.attr, target)


def node_config(spec: NodeSpec) -> dict[str, Any]:
    """The configuration a node sees; bridges get their key expressions."""
    if spec.run.kind in _BRIDGES:
        return {**spec.config, "keys": dict(spec.run.keys)}
    return dict(spec.config)
