"""Dataflow descriptors: models, validation, compilation into a graph.

Public API::

    load_flow(path, vars=None) -> (DataflowModel, Document)
    check_file(path, vars=None) -> list[Problem]
    compile_file(path, vars=None, instance=None) -> Graph       # raises UserError
    compile_dict(data, base_dir, vars=None, instance=None, source_file=None) -> Graph
    parse_cli_vars(["K=V", ...]) -> dict                          # raises UserError
"""

from zflow.dataflow.compiler import (
    check_file,
    compile_dict,
    compile_file,
    load_flow,
    new_instance_id,
)
from zflow.dataflow.graph import Graph
from zflow.dataflow.vars import parse_cli_vars

__all__ = ["Graph", "check_file", "compile_dict", "compile_file", "load_flow", "new_instance_id", "parse_cli_vars"]
