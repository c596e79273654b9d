"""One hop, side by side in one run: raw zenoh-python pub/sub between two processes, a two-node
zflow flow (process per node), and an in-memory link (one process).

    python benchmarks/hop.py [--quick]

Prints throughput (msg/s, flat out) and one-way latency p50/p99 at a fixed rate for 64 B,
1 KiB and 64 KiB payloads, each zflow figure as a ratio to raw Zenoh measured in the same run.
All traffic goes client → embedded router → client on loopback, for zflow and raw alike, and
both subscribers materialise each payload as ``bytes`` (a consumer must read its data).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SIZES = {"64B": 64, "1KiB": 1024, "64KiB": 65536}


# ---- raw zenoh-python, two processes ------------------------------------------------------------
def raw_sub(endpoint: str, n: int, out: str, latency: bool) -> None:
    import threading

    import numpy as np
    import zenoh

    from zflow.transport import SessionOptions, make_config

    session = zenoh.open(make_config(SessionOptions(mode="client", connect=[endpoint])))
    state = {"n": 0, "first": 0, "last": 0}
    lat: list[int] = []
    done = threading.Event()
    unpack = struct.Struct("<q").unpack_from

    def on_sample(sample):
        now = time.time_ns()
        payload = sample.payload.to_bytes()  # a real consumer reads its data, as zflow's sink does
        if state["n"] == 0:
            state["first"] = now
        state["last"] = now
        state["n"] += 1
        if latency:
            lat.append(now - unpack(payload)[0])
        if state["n"] >= n:
            done.set()

    sub = session.declare_subscriber("bench/raw", on_sample)
    Path(out + ".ready").touch()
    done.wait(120)
    result = {"n": state["n"], "seconds": (state["last"] - state["first"]) / 1e9}
    if lat:
        arr = np.array(lat[len(lat) // 10:]) / 1e3
        result["p50_us"] = float(np.percentile(arr, 50))
        result["p99_us"] = float(np.percentile(arr, 99))
    Path(out).write_text(json.dumps(result))
    sub.undeclare()
    session.close()


def raw_pub(endpoint: str, n: int, size: int, rate: float) -> None:
    import zenoh

    from zflow.transport import SessionOptions, make_config

    session = zenoh.open(make_config(SessionOptions(mode="client", connect=[endpoint])))
    pub = session.declare_publisher("bench/raw", congestion_control=zenoh.CongestionControl.BLOCK)
    while not pub.matching_status.matching:
        time.sleep(0.01)
    time.sleep(0.2)
    body = bytes(max(0, size - 8))
    pack = struct.Struct("<q").pack
    if rate <= 0:
        payload = pack(time.time_ns()) + body
        for _ in range(n):
            pub.put(payload)
    else:
        period = 1.0 / rate
        start = time.perf_counter()
        for i in range(n):
            target = start + i * period
            while (now := time.perf_counter()) < target:
                if target - now > 0.0005:
                    time.sleep(target - now - 0.0004)
            pub.put(pack(time.time_ns()) + body)
    time.sleep(0.5)
    pub.undeclare()
    session.close()


def run_raw(endpoint: str, n: int, size: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "raw.json")
        me = [sys.executable, __file__]
        sub = subprocess.Popen([*me, "--role", "raw-sub", endpoint, str(n), out, str(int(rate > 0))])
        while not Path(out + ".ready").exists():
            time.sleep(0.01)
        pub = subprocess.Popen([*me, "--role", "raw-pub", endpoint, str(n), str(size), str(rate)])
        sub.wait(180)
        pub.wait(30)
        return json.loads(Path(out).read_text())


# ---- zflow ------------------------------------------------------------------------------------------
def run_zflow(endpoint: str, n: int, size: int, rate: float, in_memory: bool) -> dict:
    from runtime_helpers import graph, node

    from zflow.runtime.run import run_flow

    nodes_file = str(Path(__file__).with_name("hop_nodes.py"))
    group = "one" if in_memory else None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "zflow.json")
        g = graph("hop", [
            node("src", "source", nodes_file, attr="Blast", outputs=["out"],
                 config={"n": n, "size": size, "rate": rate}, group=group),
            node("sink", "sink", nodes_file, attr="Measure", inputs=["in"],
                 config={"out": out, "latency": rate > 0}, group=group),
        ], [("src", "out", "sink", "in")])
        run_flow(g, connect=[endpoint], log=None)
        return json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run)")
    parser.add_argument("--role")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    if args.role == "raw-sub":
        endpoint, n, out, lat = args.rest
        return raw_sub(endpoint, int(n), out, lat == "1")
    if args.role == "raw-pub":
        endpoint, n, size, rate = args.rest
        return raw_pub(endpoint, int(n), int(size), float(rate))

    from zflow.transport import EmbeddedRouter

    scale = 0.1 if args.quick else 1.0
    counts = {"64B": 200_000, "1KiB": 200_000, "64KiB": 20_000}
    lat_n = int(2000 * (0.5 if args.quick else 1.0))
    print(f"{'payload':>7} {'metric':>12} {'raw zenoh':>12} {'zflow hop':>12} {'ratio':>7} "
          f"{'in-memory':>12} {'ratio':>7}")
    with EmbeddedRouter() as router:
        ep = router.endpoint
        for label, size in SIZES.items():
            n = max(1000, int(counts[label] * scale))
            raw = run_raw(ep, n, size, 0)
            hop = run_zflow(ep, n, size, 0, in_memory=False)
            mem = run_zflow(ep, n * (5 if label != "64KiB" else 1), size, 0, in_memory=True)
            rate = {k: v["n"] / v["seconds"] if v["seconds"] else float("inf") for k, v in
                    (("raw", raw), ("hop", hop), ("mem", mem))}
            print(f"{label:>7} {'msg/s':>12} {rate['raw']:>12,.0f} {rate['hop']:>12,.0f} "
                  f"{rate['hop'] / rate['raw']:>6.2f}x {rate['mem']:>12,.0f} {rate['mem'] / rate['raw']:>6.2f}x",
                  flush=True)
            lraw = run_raw(ep, lat_n, size, 1000)
            lhop = run_zflow(ep, lat_n, size, 1000, in_memory=False)
            lmem = run_zflow(ep, lat_n, size, 1000, in_memory=True)
            for q in ("p50_us", "p99_us"):
                print(f"{label:>7} {q + ' @1k/s':>12} {lraw[q]:>12.1f} {lhop[q]:>12.1f} "
                      f"{lhop[q] / lraw[q]:>6.2f}x {lmem[q]:>12.1f} {lmem[q] / lraw[q]:>6.2f}x", flush=True)
    print("(latency ratios: lower is better; throughput ratios: higher is better)")


if __name__ == "__main__":
    main()
