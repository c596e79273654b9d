"""``zflow run``: run a flow on this machine (embedded router by default)."""

from __future__ import annotations

import argparse
import sys
from collections import deque
from pathlib import Path
from typing import Any

from zflow.cli.args import seconds
from zflow.cli.flow import add_var_argument
from zflow.errors import Problem, RuntimeFailure, UserError


def load_graph(path: str, variables: dict[str, object], instance: str | None):
    """A descriptor (YAML/JSON) is compiled; a compiled graph (``zflow graph --format json``) is loaded."""
    from zflow.dataflow.graph import Graph

    file = Path(path)
    if file.suffix == ".json" and file.is_file():
        from zflow.documents import load_document

        data = load_document(path).data
        if isinstance(data, dict) and "nodes" in data and "flow" in data:
            try:
                graph = Graph.from_dict(data)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise UserError(Problem(f"not a compiled graph ({type(exc).__name__}: {exc})", file=path,
                                        hint="expected the output of zflow graph --format json")) from None
            return graph.with_instance(instance) if instance else graph
    from zflow.cli.flow import warn_unused_vars
    from zflow.dataflow import compile_file

    graph = compile_file(path, vars=variables, instance=instance)
    warn_unused_vars(graph, variables)
    return graph


def _run(args: argparse.Namespace) -> int:
    from zflow.dataflow import parse_cli_vars
    from zflow.runtime.supervisor import print_prefixed

    graph = load_graph(args.flow, parse_cli_vars(args.var), args.instance)
    tails: dict[str, deque[str]] = {}

    def log(name: str, line: str) -> None:
        """Quiet runs still keep each node's last lines, to show why one failed."""
        if args.quiet:
            tails.setdefault(name, deque(maxlen=30)).append(line)
        else:
            print_prefixed(name, line)

    try:
        result = _run_flow(args, graph, log)
    except (RuntimeFailure, UserError):
        _show_tails(tails)
        raise
    _show_tails({n: t for n, t in tails.items() if n in result.failed})
    how = "stopped" if result.stopped else "finished"
    print(f"zflow: flow {graph.flow!r} {how} in {result.elapsed_s:.2f}s "
          f"(ready in {result.ready_s:.2f}s)", file=sys.stderr)
    for name, st in result.status.items():
        extra = f", {st['restarts']} restart(s)" if st["restarts"] else ""
        print(f"  {name}: {st['state']} (exit {st['exit_code']}{extra})", file=sys.stderr)
    for line in result.drop_lines:
        print(f"  dropped: {line}", file=sys.stderr)
    return result.exit_code


def _show_tails(tails: dict[str, deque[str]]) -> None:
    for name, lines in tails.items():
        useful = [line for line in lines if not line.startswith(("-- started", "-- stopped"))]
        for line in useful:
            print(f"[{name}] {line}", file=sys.stderr)


def _run_flow(args: argparse.Namespace, graph: Any, log: Any) -> Any:
    from zflow.runtime.local_run import run_flow

    return run_flow(
        graph,
        connect=args.connect or None,
        listen=args.listen or None,
        router_config=args.router_config,
        duration=args.duration,
        log=log,
        on_ready=lambda _s: print(
            f"zflow: flow {graph.flow!r} instance {graph.instance} ready "
            f"({len(graph.nodes)} nodes); tap it with: zflow/data/{graph.flow}/{graph.instance}/**",
            file=sys.stderr, flush=True),
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a flow on this machine (embedded Zenoh router by default)")
    p.add_argument("flow", help="dataflow descriptor (YAML/JSON) or compiled graph (.json)")
    add_var_argument(p)
    p.add_argument("--instance", help="instance id (default: random)")
    p.add_argument("--connect", action="append", metavar="ENDPOINT",
                   help="join an existing Zenoh router instead of embedding one (e.g. tcp/10.0.0.1:7447)")
    p.add_argument("--listen", action="append", metavar="ENDPOINT",
                   help="where the embedded router listens (default: a free port on 127.0.0.1)")
    p.add_argument("--router-config", help="Zenoh JSON5 config for the embedded router (router_config/)")
    p.add_argument("--duration", type=seconds, help="stop after this many seconds")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="do not print node output (except a failed node's last lines)")
    p.set_defaults(handler=_run)
