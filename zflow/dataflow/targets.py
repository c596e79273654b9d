"""What a node runs: turning ``operator:`` / ``library:`` / ``uri:`` text into a RunSpec.

Forms: ``./clean.py`` (file relative to the descriptor's directory), ``./clean.py:Clean``
(file + attribute), ``pkg.module:Class`` (importable module), a built-in name (``window``),
and Zenoh-Flow's ``file://...`` URLs. Nothing is imported: files are checked on disk, modules
with import-system finders (parents are not executed), attributes by parsing the source.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path

from zflow.dataflow.builtins import builtin_operators
from zflow.dataflow.graph import RunSpec
from zflow.errors import did_you_mean

_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_NATIVE = (".so", ".dylib", ".dll")


class TargetError(Exception):
    """A target that cannot run; ``hint`` is a did-you-mean or what was expected."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def strip_file_url(text: str) -> str:
    """``file:///a/b`` -> ``/a/b``; ``file://./x`` -> ``./x`` (Zenoh-Flow URLs)."""
    return text[len("file://"):] if text.startswith("file://") else text


def is_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or "/" in text or text.endswith(".py") or text.endswith(_NATIVE)


def split_attr(text: str) -> tuple[str, str | None]:
    """``x.py:Clean`` -> (``x.py``, ``Clean``); a trailing non-identifier is not an attribute."""
    head, sep, tail = text.rpartition(":")
    if sep and head and _IDENT.match(tail):
        return head, tail
    return text, None


def resolve_path(text: str, base_dir: str) -> str:
    path = os.path.expanduser(strip_file_url(text))
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return os.path.normpath(path)


def resolve_target(text: str, base_dir: str) -> RunSpec:
    """The RunSpec for an ``operator:`` value, or :class:`TargetError`."""
    raw = strip_file_url(text.strip())
    if not raw:
        raise TargetError("empty operator", "expected ./file.py, pkg.module:Class or a built-in name")
    body, attr = split_attr(raw)
    if is_path(body):
        return _file_target(body, attr, base_dir)
    builtins = builtin_operators()
    if attr is None and body in builtins:
        return RunSpec(kind="builtin", target=body)
    if not _DOTTED.match(body):
        hint = did_you_mean(body, builtins)
        if attr is None and hint:
            raise TargetError(f"unknown operator '{body}': not a built-in, a file or an importable module", hint)
        raise TargetError(f"bad operator {text!r}",
                          "expected ./file.py, ./file.py:Class, pkg.module:Class or a built-in name")
    if attr is None and "." not in body and find_module(body, base_dir) is None:
        hint = did_you_mean(body, builtins) or ("built-ins: " + ", ".join(sorted(builtins)))
        raise TargetError(f"unknown operator '{body}': not a built-in, a file or an importable module", hint)
    check_module_attr(body, attr, base_dir, did_you_mean(body, builtins))
    return RunSpec(kind="python", target=body, attr=attr)


def check_module_attr(module: str, attr: str | None, base_dir: str, hint: str | None = None) -> None:
    """``module`` can be found (and defines ``attr`` when its source is readable), or TargetError."""
    origin = find_module(module, base_dir)
    if origin is None:
        raise TargetError(f"module '{module}' cannot be found", hint)
    if attr is not None and origin.endswith(".py"):
        _check_attr(origin, attr)


def _file_target(body: str, attr: str | None, base_dir: str) -> RunSpec:
    path = resolve_path(body, base_dir)
    if path.endswith(_NATIVE):
        raise TargetError(f"native library {os.path.basename(path)!r} cannot run in zflow",
                          "zflow runs Python nodes: point at the .py file (Zenoh-Flow: configuration.python-script)")
    if not os.path.isfile(path):
        folder = os.path.dirname(path)
        siblings = [n for n in _listdir(folder) if n.endswith(".py")]
        hint = did_you_mean(os.path.basename(path), siblings)
        where = "directory does not exist" if not os.path.isdir(folder) else "file not found"
        raise TargetError(f"operator {where}: {path}", hint)
    if path.endswith(".py") and (error := syntax_error(path)):
        raise TargetError(f"syntax error in {error}")
    if attr is not None:
        _check_attr(path, attr)
    return RunSpec(kind="python", target=path, attr=attr)


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


_PARSED: dict[tuple[str, float], ast.Module | SyntaxError | None] = {}


def _parse(path: str) -> ast.Module | SyntaxError | None:
    """The file's syntax tree, its SyntaxError, or None when it cannot be read (cached)."""
    try:
        key = (path, os.stat(path).st_mtime)
    except OSError:
        return None
    if key not in _PARSED:
        try:
            _PARSED[key] = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
        except SyntaxError as exc:
            _PARSED[key] = exc
        except (OSError, UnicodeDecodeError, ValueError):
            _PARSED[key] = None
    return _PARSED[key]


def syntax_error(path: str) -> str | None:
    """``file.py:3: expected ':'`` when a Python file does not parse."""
    tree = _parse(path)
    if isinstance(tree, SyntaxError):
        return f"{path}:{tree.lineno}: {tree.msg}"
    return None


def top_level_names(path: str) -> set[str] | None:
    """Names a Python file defines at top level (None if it cannot be parsed)."""
    tree = _parse(path)
    if not isinstance(tree, ast.Module):
        return None
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names.add(stmt.target.id)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
    return names


def _check_attr(path: str, attr: str) -> None:
    names = top_level_names(path)
    if names is not None and attr not in names and "*" not in names:
        raise TargetError(f"'{attr}' is not defined in {path}", did_you_mean(attr, names))


def find_module(dotted: str, base_dir: str) -> str | None:
    """Where an importable module lives (its origin), without running any package code.

    The descriptor's directory is searched too, so ``mypkg.ops:Node`` next to the flow file
    resolves (node hosts put it on ``sys.path``).
    """
    parts = dotted.split(".")
    search = [base_dir, *sys.path]
    spec = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        module = sys.modules.get(name)
        if module is not None:  # already imported (os.path, zflow...): nothing new runs
            spec = getattr(module, "__spec__", None)
            if spec is None:
                return getattr(module, "__file__", None) or "<module>"
            continue
        if i == 0:
            spec = importlib.machinery.PathFinder.find_spec(name, search)
            if spec is None:
                try:
                    spec = importlib.util.find_spec(name)  # built-in / frozen modules
                except (ImportError, ValueError):
                    spec = None
        elif spec is None or not spec.submodule_search_locations:
            return None
        else:
            spec = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
        if spec is None:
            return None
    assert spec is not None
    return spec.origin or "<namespace>"


__all__ = ["TargetError", "check_module_attr", "find_module", "resolve_path", "resolve_target", "split_attr", "strip_file_url"]
