"""The store's dependency direction: storage engine (zflow.tsdb) -> backends (storage_backends).

Backends hold the fragment locations, the fragment container format and the range wire format
with their servers; they must never import the engine, not even inside a function (a hidden
import still makes the two packages one unit you cannot understand or test apart).
"""

from __future__ import annotations

import ast
from pathlib import Path

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

