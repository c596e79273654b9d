"""Workflow benchmark: warm trigger-to-Completed latency, sustained runs/s, cold step start.

    python benchmarks/workflow.py [--quick]

A 3-step workflow (emit-every -> add -> add -> add), one process per step on an embedded
router. Latency is measured from the trigger's emission to the run record turning Completed
(both stamped on this machine). The baseline is a raw Zenoh round trip between two sessions
through the same kind of router, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zflow.transport.session import EmbeddedRouter, open_session  # noqa: E402
from zflow.workflows.workflow import load_workflow  # noqa: E402
from zflow.workflows.workflow_runner import WorkflowRunner  # noqa: E402

ACTIONS = ROOT / "tests" / "workflow_data" / "actions"

WORKFLOW = """\
apiVersion: ryax.tech/v2.0
kind: Workflows
spec:
  id: bench-{name}
  actions_path: [{actions}]
  actions:
    - id: tick
      from: emit-every
      inputs: {{interval: {interval}}}
    - id: a
      from: add
      inputs: {{x: {{reference_value: tick.index}}}}
    - id: b
      from: add
      inputs: {{x: {{reference_value: a.y}}}}
      {extra}
    - id: c
      from: add
      inputs: {{x: {{reference_value: b.y}}}}
"""


def workflow(tmp: Path, name: str, interval: str, extra: str = "") -> object:
    p = tmp / f"{name}.yaml"
    p.write_text(WORKFLOW.format(name=name, actions=ACTIONS, interval=interval, extra=extra))
    return load_workflow(p)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def raw_round_trip(n: int) -> float:
    """p50 of a raw Zenoh ping-pong between two client sessions through a router (ms)."""
    with EmbeddedRouter() as router, open_session(router.client_options()) as a, \
            open_session(router.client_options()) as b:
        pong = threading.Event()
        b_pub = b.declare_publisher("bench/pong")
        sub_b = b.declare_subscriber("bench/ping", lambda s: b_pub.put(s.payload.to_bytes()))
        sub_a = a.declare_subscriber("bench/pong", lambda s: pong.set())
        pub = a.declare_publisher("bench/ping")
        time.sleep(0.3)
        out = []
        for _ in range(n):
            pong.clear()
            t = time.perf_counter()
            pub.put(b"x" * 256)
            pong.wait(2)
            out.append((time.perf_counter() - t) * 1000)
        sub_a.undeclare()
        sub_b.undeclare()
    return statistics.median(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_lat, n_tput, n_cold = (40, 300, 2) if args.quick else (200, 2000, 4)
    tmp = Path(tempfile.mkdtemp(prefix="zflow-bench-wf-"))

    base = raw_round_trip(200 if args.quick else 1000)
    print(f"baseline: raw Zenoh round trip (2 sessions via router) p50 {base:.3f} ms")

    wf = workflow(tmp, "warm", "20ms")
    with WorkflowRunner(wf, tmp / "warm", max_runs=n_lat) as r:
        recs = r.wait(runs=n_lat, timeout=120)
    lat = [rec["duration"] * 1000 for rec in recs if rec["status"] == "Completed"]
    p50 = statistics.median(lat)
    print(f"warm 3-step workflow, trigger-to-Completed: p50 {p50:.2f} ms, p90 {pct(lat, 0.9):.2f} ms "
          f"({len(lat)} runs; {p50 / base:.1f}x the raw round trip; target p50 <= 20 ms)")

    for label, interval in (("burst (as fast as the trigger emits)", "0ms"), ("paced at 500 runs/s", "2ms")):
        wf = workflow(tmp, "tput" + interval, interval)
        with WorkflowRunner(wf, tmp / ("tput" + interval), max_runs=n_tput) as r:
            recs = r.wait(runs=n_tput, timeout=300)
        ok = [rec for rec in recs if rec["status"] == "Completed"]
        for rec in [rec for rec in recs if rec["status"] != "Completed"][:3]:
            print(f"  not completed: {rec['run']} {rec['status']}: {rec.get('error')}")
        span = max(rec["ended"] for rec in ok) - min(rec["created"] for rec in ok)
        lat = [rec["duration"] * 1000 for rec in ok]
        print(f"sustained, {label}: {len(ok) / span:.0f} runs/s over {len(ok)} runs ({span:.2f} s); "
              f"latency p50 {statistics.median(lat):.1f} ms, p90 {pct(lat, 0.9):.1f} ms (target >= 200 runs/s)")

    extra = "execution: on-demand\n      idle_retention: 0.2s"
    wf = workflow(tmp, "cold", "1500ms", extra)
    with WorkflowRunner(wf, tmp / "cold", max_runs=n_cold) as r:
        recs = r.wait(runs=n_cold, timeout=120)
        cold = r.activators["b"].cold_starts
        starts = r.activators["b"].starts
    durs = [rec["duration"] * 1000 for rec in recs]
    print(f"cold (scaled-to-zero) step start: median {statistics.median(cold) * 1000:.0f} ms, "
          f"max {max(cold) * 1000:.0f} ms over {starts} starts; run with a cold step p50 "
          f"{statistics.median(durs):.0f} ms (target <= 1500 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
