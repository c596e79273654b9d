"""Dataflow descriptors: models, validation, compilation into a graph.

Public API::

    load_flow(path, vars=None) -> (DataflowModel, Document)
    check_file(path, vars=None) -> list[Problem]
    compile_file(path, vars=None, instance=None) -> Graph       # raises UserError
    compile_dict(data, base_dir, vars=None, instance=None, source_file=None) -> Graph
    parse_cli_vars(["K=V", ...]) -> dict                          # raises UserError

Names are imported on first use: node hosts and daemons import ``zflow.dataflow.graph`` and
must not pay for pydantic and the compiler (about 18 MB per process).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zflow.dataflow.compiler import (
        check_file,
        compile_dict,
        compile_file,
        load_flow,
        new_instance_id,
    )
    from zflow.dataflow.graph import Graph
    from zflow.dataflow.vars import parse_cli_vars

_LAZY = {
    "check_file": "zflow.dataflow.compiler",
    "compile_dict": "zflow.dataflow.compiler",
    "compile_file": "zflow.dataflow.compiler",
    "load_flow": "zflow.dataflow.compiler",
    "new_instance_id": "zflow.dataflow.compiler",
    "Graph": "zflow.dataflow.graph",
    "parse_cli_vars": "zflow.dataflow.vars",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zflow.dataflow' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["Graph", "check_file", "compile_dict", "compile_file", "load_flow", "new_instance_id", "parse_cli_vars"]
