"""Dependencies point one way (issue 9, item 5): an import against the map fails here.

Every ``import`` in every module of ``zflow``, ``operators`` and ``storage_backends`` counts,
at module level AND inside functions (a hidden import is still a loop). The map, by package:

    floor (errors <- documents, codec, keyexprs; settings <- process) imports nothing above it
    transport (Zenoh sessions)                                   floor
    dataflow (descriptor -> graph)                               floor
    scheduler (placement)                                        dataflow, transport
    runtime (node hosts, supervisor)                             dataflow, transport
    operators (built-in library, registered by name in dataflow) runtime and below
    daemon, workflows, build, tsdb -> storage_backends, cli      as listed below
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zflow", "operators", "storage_backends")

FLOOR = {"zflow.errors", "zflow.documents", "zflow.codec", "zflow.keyexprs", "zflow.settings", "zflow.process"}
BELOW_RUNTIME = FLOOR | {"zflow.transport", "zflow.dataflow"}
NODE_API = {"zflow.runtime", "zflow"}  # ``import zflow`` is the node API (zflow/__init__.py)

# unit -> the units it may import (besides itself). Read top to bottom: each floor may use
# only floors listed for it.
ALLOWED: dict[str, set[str]] = {
    "zflow.errors": set(),
    "zflow.settings": set(),
    "zflow.process": {"zflow.settings"},  # spawning, parent death, stop signals, readiness
    "zflow.codec": {"zflow.errors"},
    "zflow.documents": {"zflow.errors"},
    "zflow.keyexprs": {"zflow.errors"},
    "zflow.transport": FLOOR,
    "zflow.dataflow": FLOOR,
    "zflow.scheduler": BELOW_RUNTIME,
    "zflow.runtime": BELOW_RUNTIME,
    "operators": BELOW_RUNTIME | NODE_API,
    "zflow.daemon": BELOW_RUNTIME | NODE_API | {"zflow.scheduler"},
    "zflow.workflows": BELOW_RUNTIME | NODE_API | {"zflow.scheduler", "zflow.daemon"},
    # action images (zflow build): builds what workflows and daemons run
    "zflow.build": BELOW_RUNTIME | NODE_API | {"zflow.workflows", "zflow.daemon"},
    "storage_backends": FLOOR | {"zflow.transport"},
    "zflow.tsdb": FLOOR | {"zflow.transport", "storage_backends"},
    "zflow": FLOOR | {"zflow.runtime", "zflow.dataflow"},  # the public API re-exports
    "zflow.__main__": {"zflow.cli"},
    "zflow.cli": FLOOR | NODE_API | {"zflow.transport", "zflow.dataflow", "zflow.scheduler", "zflow.runtime",
                          "zflow.daemon", "zflow.workflows", "zflow.build", "zflow.tsdb", "storage_backends"},
}

# Loops still allowed against the map: none (tsdb <-> storage_backends and scheduler <-> daemon
# were removed by issue 9, item 5); a line here would name its reason.
KNOWN: set[tuple[str, str]] = set()


def unit(module: str) -> str:
    """The package a module belongs to in the map (``zflow.x.y`` -> ``zflow.x``)."""
    parts = module.split(".")
    if parts[0] == "zflow":
        return ".".join(parts[:2])
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the tree, at any depth."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base == "zflow":  # ``from zflow import keyexprs`` imports zflow.keyexprs
                out += [(node.lineno, f"zflow.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, base))
    return out


def violations(source: str, module: str, is_package: bool = False) -> list[tuple[int, str, str]]:
    """(line, from unit, to unit) for each import that runs against the map."""
    src = unit(module)
    found = []
    for line, target in imported(ast.parse(source), module, is_package):
        if target.split(".")[0] not in PACKAGES:
            continue
        dst = unit(target)
        if dst == src or dst in ALLOWED.get(src, set()) or (src, dst) in KNOWN:
            continue
        found.append((line, src, dst))
    return found


def test_every_import_follows_the_direction():
    bad = []
    units = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = module_name(path)
            units.add(unit(module))
            for line, src, dst in violations(path.read_text(encoding="utf-8"), module,
                                             path.name == "__init__.py"):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {src} imports {dst}")
    assert not bad, "imports against the dependency direction:\n" + "\n".join(bad)
    assert units <= set(ALLOWED), f"packages missing from the map: {sorted(units - set(ALLOWED))}"


def test_function_level_and_relative_imports_are_seen():
    hidden = "def f():\n    from operators import window\n"
    assert violations(hidden, "zflow.dataflow.targets") == [(2, "zflow.dataflow", "operators")]
    relative = "from ..daemon import client\n"
    assert violations(relative, "zflow.runtime.node_host") == [(1, "zflow.runtime", "zflow.daemon")]
    floor = "from zflow import keyexprs, runtime\n"
    assert violations(floor, "zflow.codec") == [(1, "zflow.codec", "zflow.keyexprs"),
                                                (1, "zflow.codec", "zflow.runtime")]
    assert violations("import storage_backends.base\n", "zflow.dataflow.ir") == [
        (1, "zflow.dataflow", "storage_backends")]
