"""Time for ``zflow run`` of a 3-node flow to be ready to carry data, next to the floor it sits
on: three bare Python processes that import zenoh and open a client session, in parallel.

    python benchmarks/startup.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

BARE = (
    "import sys, zenoh; from zflow.transport import SessionOptions, make_config; "
    "s = zenoh.open(make_config(SessionOptions(mode='client', connect=[sys.argv[1]]))); s.close()"
)


def bare_processes(endpoint: str) -> float:
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", BARE, endpoint], cwd=ROOT) for _ in range(3)]
    for p in procs:
        p.wait()
    return time.monotonic() - t0


def zflow_ready(endpoint: str, tmp: str) -> float:
    from runtime_helpers import graph, node

    from zflow.runtime.local_run import run_flow

    nodes = str(ROOT / "tests" / "nodes" / "basic.py")
    g = graph("startup", [
        node("src", "source", nodes, attr="count", outputs=["out"], config={"n": 1}),
        node("dbl", "operator", nodes, attr="double", inputs=["in"], outputs=["out"]),
        node("sink", "sink", nodes, attr="Collect", inputs=["in"], config={"path": f"{tmp}/o.jsonl"}),
    ], [("src", "out", "dbl", "in"), ("dbl", "out", "sink", "in")])
    return run_flow(g, connect=[endpoint], log=None).ready_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from zflow.transport import EmbeddedRouter

    reps = 3 if args.quick else 7
    with EmbeddedRouter() as router, tempfile.TemporaryDirectory() as tmp:
        bare = [bare_processes(router.endpoint) for _ in range(reps)]
        ready = [zflow_ready(router.endpoint, tmp) for _ in range(reps)]
    b, z = statistics.median(bare), statistics.median(ready)
    print(f"3 bare zenoh client processes: {b:.3f} s (median of {reps})")
    print(f"zflow 3-node flow ready:       {z:.3f} s (median of {reps})  ratio {z / b:.2f}x")


if __name__ == "__main__":
    main()
