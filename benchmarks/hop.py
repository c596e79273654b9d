"""One hop, side by side in one run: raw zenoh-python pub/sub between two processes, a two-node
zflow flow (process per node), and an in-memory link (one process).

    python benchmarks/hop.py [--quick] [--rounds N] [--json results.json] [--untyped]

For 64 B, 1 KiB and 64 KiB payloads it prints throughput (msg/s, flat out), the CPU time the
sending and receiving processes spend per message, and one-way latency p50/p99 at a fixed
1,000 msg/s; each zflow figure also as a ratio to raw Zenoh measured in the same run.

Fairness: all traffic goes client → embedded router → client on loopback, for zflow and raw
alike; every publisher and subscriber process runs in its own session, as zflow's supervisor
starts node hosts (Linux schedules each session as a group: mixing would favour one side);
both publishers put with congestion control ``block``; both subscribers materialise each
payload as ``bytes`` and run the same measuring code; the raw subscriber is a plain callback
(zenoh-python runs it on its own thread behind a 256-deep channel), and the zflow link's queue
is set to the same depth. The zflow ports are declared ``bytes``, as a byte pipeline's
descriptor would (``--untyped`` leaves them untyped: the reader then checks each payload's
encoding, ~0.1 us more per message). Raw, zflow and in-memory runs are interleaved round by round, so a
burst of load from elsewhere hits every side alike; throughput is the best round of each side,
CPU and latency the median round. CPU per message is the whole process's CPU time (every
thread, Zenoh's included) from the first to the last message, which is far steadier than
throughput on a shared machine. Process start-up is never measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
QUEUE = 256  # zenoh-python's default callback channel depth, used by the raw subscriber
TIMEOUT_S = 120.0
TYPED = True  # the hop's ports are declared ``bytes`` (--untyped: left untyped)


# ---- raw zenoh-python, two processes ------------------------------------------------------------
def raw_sub(endpoint: str, n: int, out: str, latency: bool) -> None:
    import threading

    import numpy as np
    import zenoh

    from zflow.transport import SessionOptions, make_config

    session = zenoh.open(make_config(SessionOptions(mode="client", connect=[endpoint])))
    state = {"n": 0, "first": 0, "last": 0, "cpu": 0.0}
    lat: list[int] = []
    done = threading.Event()
    unpack = struct.Struct("<q").unpack_from

    def on_sample(sample):
        now = time.time_ns()
        payload = sample.payload.to_bytes()  # a real consumer reads its data, as zflow's sink does
        if state["n"] == 0:
            state["first"] = now
            state["cpu"] = time.process_time()
        state["last"] = now
        state["n"] += 1
        if latency:
            lat.append(now - unpack(payload)[0])
        if state["n"] >= n:
            done.set()

    sub = session.declare_subscriber("bench/raw", on_sample)
    Path(out + ".ready").touch()
    done.wait(TIMEOUT_S)
    result = {"n": state["n"], "seconds": (state["last"] - state["first"]) / 1e9,
              "cpu_s": time.process_time() - state["cpu"]}
    if lat:
        arr = np.array(lat[len(lat) // 10:]) / 1e3
        result["p50_us"] = float(np.percentile(arr, 50))
        result["p99_us"] = float(np.percentile(arr, 99))
    Path(out).write_text(json.dumps(result))
    sub.undeclare()
    session.close()


def raw_pub(endpoint: str, n: int, size: int, rate: float, out: str) -> None:
    import zenoh

    from zflow.transport import SessionOptions, make_config

    session = zenoh.open(make_config(SessionOptions(mode="client", connect=[endpoint])))
    pub = session.declare_publisher("bench/raw", congestion_control=zenoh.CongestionControl.BLOCK)
    while not pub.matching_status.matching:
        time.sleep(0.01)
    time.sleep(0.2)
    body = bytes(max(0, size - 8))
    pack = struct.Struct("<q").pack
    cpu = time.process_time()
    if rate <= 0:
        payload = pack(time.time_ns()) + body
        for _ in range(n):
            pub.put(payload)
    else:
        from hop_nodes import paced

        for _ in paced(n, rate):
            pub.put(pack(time.time_ns()) + body)
    Path(out + ".src").write_text(json.dumps({"cpu_s": time.process_time() - cpu}))
    time.sleep(0.5)
    pub.undeclare()
    session.close()


def run_raw(endpoint: str, n: int, size: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "raw.json")
        me = [sys.executable, __file__]
        # Each in its own session, as zflow's supervisor starts node hosts: same scheduling (autogroup).
        sub = subprocess.Popen([*me, "--role", "raw-sub", endpoint, str(n), out, str(int(rate > 0))],
                               start_new_session=True)
        try:
            while not Path(out + ".ready").exists():
                if sub.poll() is not None:
                    raise RuntimeError("raw subscriber failed to start")
                time.sleep(0.01)
            pub = subprocess.Popen([*me, "--role", "raw-pub", endpoint, str(n), str(size), str(rate), out],
                                   start_new_session=True)
            try:
                sub.wait(TIMEOUT_S + 10)
                pub.wait(30)
            finally:
                pub.kill()
        finally:
            sub.kill()
        return _result(out)


# ---- zflow ------------------------------------------------------------------------------------------
def run_zflow(endpoint: str, n: int, size: int, rate: float, in_memory: bool) -> dict:
    from runtime_helpers import graph, node

    from zflow.dataflow.graph import QoS
    from zflow.runtime.local_run import run_flow

    nodes_file = str(Path(__file__).with_name("hop_nodes.py"))
    group = "one" if in_memory else None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "zflow.json")
        g = graph("hop", [
            node("src", "source", nodes_file, attr="Blast", outputs=["out"],
                 config={"n": n, "size": size, "rate": rate, "out": out}, group=group),
            node("sink", "sink", nodes_file, attr="Measure", inputs=["in"],
                 config={"out": out, "latency": rate > 0}, group=group),
        ], [("src", "out", "sink", "in")], qos={("sink", "in"): QoS(queue_size=QUEUE)})
        if TYPED:
            g = _typed_bytes(g)
        result = run_flow(g, connect=[endpoint], log=None, duration=TIMEOUT_S)
        if result.stopped or not Path(out).exists():
            raise RuntimeError(f"the zflow hop did not finish within {TIMEOUT_S:.0f}s: {result.status}")
        return _result(out)


def _typed_bytes(g):
    """Declare every port ``bytes``, as a byte pipeline's descriptor would."""
    from dataclasses import replace

    nodes = {nid: replace(n, inputs={p: replace(i, type="bytes") for p, i in n.inputs.items()},
                          outputs={p: replace(o, type="bytes") for p, o in n.outputs.items()})
             for nid, n in g.nodes.items()}
    return replace(g, nodes=nodes)


def _result(out: str) -> dict:
    result = json.loads(Path(out).read_text())
    src = Path(out + ".src")
    if src.exists():
        result["src_cpu_s"] = json.loads(src.read_text())["cpu_s"]
    result["msg_s"] = result["n"] / result["seconds"] if result["seconds"] else float("inf")
    return result


# ---- the run ------------------------------------------------------------------------------------
def _cpu_us(r: dict, in_memory: bool) -> float:
    """CPU per message over the processes involved (one process for the in-memory link)."""
    total = r["cpu_s"] if in_memory else r["cpu_s"] + r.get("src_cpu_s", 0.0)
    return total / r["n"] * 1e6


def summarise(rounds: list[dict]) -> dict:
    """Best throughput, median CPU and latency of each side over the rounds."""
    out: dict = {}
    for side in ("raw", "hop", "mem"):
        tput = [r[side] for r in rounds if "msg_s" in r.get(side, {})]
        lat = [r[f"lat_{side}"] for r in rounds if f"lat_{side}" in r]
        out[side] = {
            "msg_s": max(t["msg_s"] for t in tput),
            "cpu_us": statistics.median(_cpu_us(t, side == "mem") for t in tput),
            "p50_us": statistics.median(t["p50_us"] for t in lat) if lat else float("nan"),
            "p99_us": statistics.median(t["p99_us"] for t in lat) if lat else float("nan"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, one round (a smoke run)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per size (default 3, quick 1)")
    parser.add_argument("--json", metavar="PATH", help="also write every round's figures and the summary")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"payloads to run (default {','.join(SIZES)})")
    parser.add_argument("--no-latency", action="store_true", help="throughput and CPU only")
    parser.add_argument("--untyped", action="store_true",
                        help="leave the zflow ports untyped (the reader then checks each payload's encoding)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "raw-sub":
        endpoint, n, out, lat = args.rest
        return raw_sub(endpoint, int(n), out, lat == "1")
    if args.role == "raw-pub":
        endpoint, n, size, rate, out = args.rest
        return raw_pub(endpoint, int(n), int(size), float(rate), out)

    from zflow.transport import EmbeddedRouter

    global TYPED
    TYPED = not args.untyped
    scale = 0.1 if args.quick else 1.0
    n_rounds = args.rounds or (1 if args.quick else 3)
    counts = {"64B": 200_000, "1KiB": 200_000, "64KiB": 20_000}
    lat_n = int(2000 * (0.5 if args.quick else 1.0))
    report: dict = {"rounds": n_rounds, "sizes": {}}
    print(f"{'payload':>7} {'metric':>14} {'raw zenoh':>11} {'zflow hop':>11} {'ratio':>7} "
          f"{'in-memory':>11} {'ratio':>7}")
    with EmbeddedRouter() as router:
        ep = router.endpoint
        for label in args.sizes.split(","):
            size = SIZES[label]
            n = max(1000, int(counts[label] * scale))
            rounds: list[dict] = []
            for _ in range(n_rounds):
                r = {
                    "raw": run_raw(ep, n, size, 0),
                    "hop": run_zflow(ep, n, size, 0, in_memory=False),
                    "mem": run_zflow(ep, n * (5 if label != "64KiB" else 1), size, 0, in_memory=True),
                }
                if not args.no_latency:
                    r["lat_raw"] = run_raw(ep, lat_n, size, 1000)
                    r["lat_hop"] = run_zflow(ep, lat_n, size, 1000, in_memory=False)
                    r["lat_mem"] = run_zflow(ep, lat_n, size, 1000, in_memory=True)
                rounds.append(r)
            s = summarise(rounds)
            report["sizes"][label] = {"summary": s, "rounds": rounds}
            raw, hop, mem = s["raw"], s["hop"], s["mem"]
            print(f"{label:>7} {'msg/s':>14} {raw['msg_s']:>11,.0f} {hop['msg_s']:>11,.0f} "
                  f"{hop['msg_s'] / raw['msg_s']:>6.2f}x {mem['msg_s']:>11,.0f} {mem['msg_s'] / raw['msg_s']:>6.2f}x")
            print(f"{label:>7} {'cpu us/msg':>14} {raw['cpu_us']:>11.2f} {hop['cpu_us']:>11.2f} "
                  f"{hop['cpu_us'] / raw['cpu_us']:>6.2f}x {mem['cpu_us']:>11.2f} {mem['cpu_us'] / raw['cpu_us']:>6.2f}x")
            for q in () if args.no_latency else ("p50_us", "p99_us"):
                print(f"{label:>7} {q + ' @1k/s':>14} {raw[q]:>11.1f} {hop[q]:>11.1f} "
                      f"{hop[q] / raw[q]:>6.2f}x {mem[q]:>11.1f} {mem[q] / raw[q]:>6.2f}x", flush=True)
    print(f"(ratio = zflow / raw; msg/s: higher is better, best of {n_rounds} round(s); cpu and latency: "
          f"lower is better, median round; cpu = sender + receiver process, one process in memory)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
