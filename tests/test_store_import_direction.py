"""The store's dependency direction: storage engine (zflow.tsdb) -> backends (storage_backends).

Backends hold the fragment locations, the fragment container format and the range wire format
with their servers; they must never import the engine, not even inside a function (a hidden
import still makes the two packages one unit you cannot understand or test apart).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def test_storage_backends_never_import_the_engine() -> None:
    files = sorted((ROOT / "storage_backends").rglob("*.py"))
    assert files, "storage_backends has no modules"
    wrong = [f"{f.relative_to(ROOT)}:{line}: imports {name}" for f in files for line, name in _imports(f)
             if name == "zflow.tsdb" or name.startswith("zflow.tsdb.")]
    assert not wrong, "storage_backends must not import zflow.tsdb:\n" + "\n".join(wrong)



def test_every_import_of_the_store_resolves() -> None:
    """Imports inside functions (optional compiled kernels behind ``except ImportError``) fail
    silently when a module moves; resolve every one of the store's imports of zflow/backends."""
    import importlib

    pytest.importorskip("numba")  # the kernels' modules import numba at module level
    files = sorted((ROOT / "storage_backends").rglob("*.py")) + sorted((ROOT / "zflow" / "tsdb").rglob("*.py"))
    missing = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if not node.module.startswith(("zflow", "storage_backends")):
                continue
            mod = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(mod, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{f.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}")
    assert not missing, "imports that do not resolve:\n" + "\n".join(missing)
