"""The built-in operator registry, read from ``operators/__init__.py`` without importing it.

Checking a descriptor must not import operator code (numpy-heavy modules, side effects), so
``BUILTINS`` is read as a literal with :mod:`ast`; if it is not a literal we fall back to
importing the package (its ``__init__`` only, never the operator modules).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def builtin_operators() -> dict[str, str]:
    """Built-in operator name -> ``"module:attr"``."""
    spec = importlib.util.find_spec("operators")
    if spec is None or not spec.origin:
        return {}
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return {}
    for stmt in tree.body:
        target: ast.expr | None = None
        node: ast.expr | None = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, node = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, node = stmt.target, stmt.value
        if isinstance(target, ast.Name) and target.id == "BUILTINS" and node is not None:
            try:
                value = ast.literal_eval(node)
            except ValueError:
                break
            return {str(k): str(v) for k, v in dict(value).items()}
    module = importlib.import_module("operators")
    return dict(getattr(module, "BUILTINS", {}))


__all__ = ["builtin_operators"]
