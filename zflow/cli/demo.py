"""``zflow demo``: the main job — a sensor pipeline run end to end on an embedded Zenoh router.

Simulated Intel Lab motes → clean (a user operator) → windowed aggregates per mote →
anomaly detector → JSONL files and a summary, each node in its own process, every link a
Zenoh key expression. It prints a short summary of what happened and where the files are.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from zflow import settings
from zflow.cli.args import non_negative, positive_int, seconds
from zflow.errors import RuntimeFailure, UserError

DEMO_ENV = settings.DEMO_FLOW


def demo_flow() -> Path:
    """The demo descriptor: ``$ZFLOW_DEMO_FLOW``, else ``examples/demo/demo.yaml`` of the source
    checkout (editable install), else the copy a wheel installs under ``<prefix>/share/zflow``."""
    forced = settings.demo_flow()
    if forced:
        return Path(forced)
    import site
    import sysconfig

    relative = Path("examples") / "demo" / "demo.yaml"
    candidates = [Path(__file__).resolve().parents[2] / relative]
    for prefix in (sysconfig.get_path("data"), sys.prefix, site.getuserbase()):
        candidates.append(Path(prefix) / "share" / "zflow" / relative)
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(
        "cannot find the demo flow examples/demo/demo.yaml (looked in "
        + ", ".join(str(c.parent) for c in candidates)
        + f"); reinstall zflow, or set {DEMO_ENV} to the path of examples/demo/demo.yaml"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the example sensor pipeline end to end and print a summary",
        description="Simulated sensors -> clean -> windowed aggregate -> anomaly detector -> sinks, "
        "on an embedded Zenoh router, one process per node.",
    )
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="sensor epochs of 31 s to simulate (default 600, about 5 hours of lab time)")
    p.add_argument("--motes", type=positive_int, default=None, help="number of motes (default 54, as in the Intel Lab)")
    p.add_argument("--speed", type=non_negative, default=None,
                   help="0 = as fast as possible (default), 1 = real time, N = N times real time")
    p.add_argument("--seed", type=int, default=None, help="simulator seed (same seed, same readings; default 7)")
    p.add_argument("--duration", type=seconds, default=None, help="stop after this many seconds")
    p.add_argument("--out", default=None, help="output directory (default: a new temporary directory)")
    p.add_argument("--verbose", "-v", action="store_true", help="show the nodes' log lines")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from zflow.dataflow import compile_file
    from zflow.runtime.local_run import run_flow

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="zflow-demo-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
        out = out.resolve()
        for stale in ("summary.json", "anomalies.jsonl", "windows.jsonl"):
            (out / stale).unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot use it as the output directory: {exc.strerror}") from None
    flow = demo_flow()
    overrides = {"EPOCHS": args.epochs, "MOTES": args.motes, "SPEED": args.speed, "SEED": args.seed}
    variables = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in overrides.items() if v is not None}
    graph = compile_file(str(flow), vars={**variables, "OUT": str(out)})
    sim = graph.nodes["sensors"].config if "sensors" in graph.nodes else {}
    motes, epochs, speed = int(sim.get("motes", 54)), int(sim.get("epochs") or 0), float(sim.get("speed", 0))
    lines: list[str] = []

    def log(name: str, line: str) -> None:
        lines.append(f"[{name}] {line}")
        if args.verbose:
            print(f"  [{name}] {line}", file=sys.stderr, flush=True)

    pace = "as fast as possible" if speed == 0 else f"{speed:g}x real time"
    print(f"zflow demo: {motes} simulated motes x {epochs} epochs of 31 s ({pace})")
    print(f"  flow {flow}")
    print(f"  {_shape(graph)}")
    print(f"  {len(graph.groups())} node processes on an embedded Zenoh router ...", flush=True)
    t0 = time.monotonic()
    try:
        result = run_flow(graph, duration=args.duration, log=log)
    except (RuntimeFailure, UserError):
        _show_node_output(lines)
        raise
    elapsed = time.monotonic() - t0
    if result.failed:
        _show_node_output(lines)
        return 1
    print(_report(out, motes * epochs, result.ready_s, elapsed, result.stopped))
    return 0


def _show_node_output(lines: list[str]) -> None:
    print("\nthe flow failed; node output:", file=sys.stderr)
    useful = [line for line in lines if "] -- started" not in line and "] -- stopped" not in line]
    for line in useful[-40:]:
        print("  " + line, file=sys.stderr)


def _shape(graph: Any) -> str:
    """``sensors -> clean -> window -> detect -> {anomalies, windows, summary}``, from the graph."""
    order: list[str] = []
    for node in graph.nodes.values():
        if node.kind == "source":
            order.append(node.id)
    sinks = [n.id for n in graph.nodes.values() if n.kind == "sink"]
    operators = [n.id for n in graph.nodes.values() if n.kind == "operator"]
    return " -> ".join([*order, *operators, "{" + ", ".join(sinks) + "}"])


def _report(out: Path, expected: int, ready_s: float, elapsed: float, stopped: bool) -> str:
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    clean = summary.get("clean") or {}
    rows: list[str] = [""]
    if clean:
        seen = clean["seen"]
        dropped = clean["dropped"]
        rows.append(f"  readings generated  {seen:>8,}   ({expected - seen:,} of {expected:,} lost in transit, "
                    "as real motes do)")
        detail = ", ".join(f"{k} {v}" for k, v in dropped.items())
        rows.append(f"  dropped as faulty   {sum(dropped.values()):>8,}   ({detail}) by examples/demo/clean.py")
    else:
        rows.append("  readings generated       n/a   (stopped before the stream ended)")
    rows.append(f"  windows computed    {summary.get('windows', 0):>8,}   (10-minute windows for "
                f"{summary.get('motes', 0)} motes: mean/min/max/std)")
    motes = summary.get("motes_with_anomalies", 0)
    strongest = "; the strongest:" if summary.get("examples") else ""
    rows.append(f"  anomalies found     {summary.get('anomalies', 0):>8,}   "
                f"(in {motes} mote{'' if motes == 1 else 's'}{strongest})")
    for a in summary.get("examples", []):
        rows.append("    " + _anomaly(a))
    note = ", stopped by --duration" if stopped else ""
    rows.append(f"  elapsed             {elapsed:>8.1f} s (nodes ready in {ready_s:.1f} s{note})")
    rows.append(f"  output              {out / 'anomalies.jsonl'}")
    rows.append(f"                      {out / 'windows.jsonl'}, {out / 'summary.json'}")
    return "\n".join(rows)


def _anomaly(a: dict[str, Any]) -> str:
    where = f"mote {a.get('moteid')}"
    if a.get("start") is not None:
        where += f", epochs {a['start']}-{a['end']}:"
    value = a.get("value")
    shown = f"{value:.4f}" if isinstance(value, float) and abs(value) < 10 else \
        f"{value:.2f}" if isinstance(value, float) else str(value)
    text = f"{where:<25} {a.get('field')} = {shown}"
    if a.get("rule") == "zscore" and a.get("mean") is not None:
        return f"{text}  (z = {a['z']:+.1f}; usual {a['mean']:.2f} +/- {a['std']:.2f})"
    side = {"min": "below", "max": "above"}.get(str(a.get("rule")), str(a.get("rule")))
    return f"{text}  ({side} {a.get('limit')})"
