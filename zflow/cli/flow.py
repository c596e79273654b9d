"""``zflow check | graph | schema``: the descriptor side of the CLI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zflow.dataflow.graph import Graph

SCHEMAS = {"dataflow": "DataflowModel", "composite": "CompositeModel", "node": "NodeFileModel"}


def add_var_argument(parser: argparse.ArgumentParser) -> None:
    """``--var K=V`` (repeatable): shared by every command that reads a dataflow."""
    parser.add_argument("--var", action="append", default=[], metavar="K=V",
                        help="set a {{ VAR }} of the descriptor (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a dataflow descriptor, reporting every error")
    p.add_argument("flow", help="dataflow file (YAML or JSON)")
    add_var_argument(p)
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("graph", help="print the compiled (flattened) graph of a dataflow")
    p.add_argument("flow", help="dataflow file (YAML or JSON)")
    p.add_argument("--format", choices=("text", "mermaid", "dot", "json"), default="text",
                   help="text, mermaid or dot for people; json is the compiled graph (zflow run reads it)")
    p.add_argument("--instance", help="instance id used in the keys (default: random)")
    add_var_argument(p)
    p.set_defaults(handler=cmd_graph)

    p = sub.add_parser("schema", help="export JSON Schemas of the descriptor formats")
    p.add_argument("--out", default="descriptors", help="output directory (default: descriptors/)")
    p.set_defaults(handler=cmd_schema)


def warn_unused_vars(graph: Graph, overrides: dict[str, object]) -> None:
    """Print a warning for each ``--var`` the flow's files neither declare nor use."""
    from zflow.dataflow.vars import unused_overrides

    files = [graph.source_file, *(n.source_file for n in graph.nodes.values())]
    for problem in unused_overrides(overrides, files):
        print(f"warning: {problem.render()}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from zflow.dataflow import compile_file, parse_cli_vars

    overrides = parse_cli_vars(args.var)
    graph = compile_file(args.flow, overrides, instance="check")
    warn_unused_vars(graph, overrides)
    print(f"ok: {graph.flow}: {len(graph.nodes)} nodes, {len(graph.links)} links")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from zflow.dataflow import compile_file, parse_cli_vars
    from zflow.dataflow.render import render

    overrides = parse_cli_vars(args.var)
    graph = compile_file(args.flow, overrides, instance=args.instance)
    warn_unused_vars(graph, overrides)
    print(render(graph, args.format))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from zflow.dataflow import models
    from zflow.documents import dump_schema
    from zflow.errors import UserError

    out = Path(args.out)
    for name, model in SCHEMAS.items():
        path = out / f"{name}.schema.json"
        try:
            dump_schema(getattr(models, model), path)
        except OSError as exc:
            raise UserError(f"--out {args.out}: cannot write {path}: {exc.strerror}") from None
        print(f"wrote {path}")
    return 0
