"""The Zenoh-Flow bridge path, side by side in one run: a ``zenoh-subscribers`` source straight
into a ``zenoh-publishers`` sink (two node hosts), against the same topology written by hand
with zenoh-python (two relay processes: subscribe, put).

    python benchmarks/bridge.py [--quick] [--rounds N] [--n N] [--size BYTES] [--json PATH]

An external publisher (its own process, congestion control ``block``, reliable) puts ``n``
sequence-numbered payloads flat out on ``bench/in``; an external subscriber (its own process)
counts what comes out on ``bench/out``. Both sides go client -> embedded router -> client, every
process in its own session; the flow's links and bridges use their defaults. Printed per side:
messages out of n, lost (whole ranges named), out of order, msg/s, and the ratio zflow /
hand-written (best round of each, and each round's, whose two sides ran back to back). Rounds
interleave the two sides so a burst of load hits both alike.
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IN_KEY, MID_KEY, OUT_KEY = "bench/in", "bench/mid", "bench/out"
TIMEOUT_S = 120.0
IDLE_S = 3.0  # the subscriber gives up this long after the last message (losses are then counted)
SEQ = struct.Struct("<q")


def _session(endpoint: str):
    import zenoh

    from zflow.transport import SessionOptions, make_config

    return zenoh.open(make_config(SessionOptions(mode="client", connect=[endpoint])))


# ---- the external ends (same for both sides) ----------------------------------------------------
def ext_pub(endpoint: str, n: int, size: int, out: str) -> None:
    """Puts n payloads flat out, ``block`` + reliable, once someone subscribes to its key."""
    import zenoh

    session = _session(endpoint)
    pub = session.declare_publisher(IN_KEY, congestion_control=zenoh.CongestionControl.BLOCK,
                                    reliability=zenoh.Reliability.RELIABLE)
    while not pub.matching_status.matching:
        time.sleep(0.01)
    Path(out + ".go").touch()
    body = bytes(max(0, size - SEQ.size))
    pack = SEQ.pack
    for i in range(n):
        pub.put(pack(i) + body)
    time.sleep(0.5)
    pub.undeclare()
    session.close()


def ext_sub(endpoint: str, n: int, out: str) -> None:
    """Counts sequence numbers on the output key; reports lost ranges and disorder."""
    session = _session(endpoint)
    seen = bytearray(n)
    state = {"n": 0, "first": 0.0, "last": 0.0, "prev": -1, "disorder": 0}
    done = threading.Event()
    unpack = SEQ.unpack_from

    def on_sample(sample) -> None:
        now = time.perf_counter()
        payload = sample.payload.to_bytes()
        i = unpack(payload)[0]
        if state["n"] == 0:
            state["first"] = now
        state["last"] = now
        state["n"] += 1
        if i < state["prev"]:
            state["disorder"] += 1
        state["prev"] = i
        if 0 <= i < n:
            seen[i] = 1
        if state["n"] >= n:
            done.set()

    sub = session.declare_subscriber(OUT_KEY, on_sample)
    Path(out + ".ready").touch()
    deadline = time.monotonic() + TIMEOUT_S
    while not done.wait(0.2) and time.monotonic() < deadline:
        if state["n"] and time.perf_counter() - state["last"] > IDLE_S:
            break
    result = {"n": state["n"], "seconds": state["last"] - state["first"], "disorder": state["disorder"],
              "lost": lost_ranges(seen)}
    Path(out).write_text(json.dumps(result))
    sub.undeclare()
    session.close()


def lost_ranges(seen: bytearray) -> list[list[int]]:
    """Contiguous [first, last] ranges of sequence numbers never received."""
    ranges: list[list[int]] = []
    for i, got in enumerate(seen):
        if got:
            continue
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def relay(endpoint: str, src: str, dst: str, out: str) -> None:
    """The hand-written bridge hop: subscribe, put (``block``), nothing else."""
    import zenoh

    session = _session(endpoint)
    pub = session.declare_publisher(dst, congestion_control=zenoh.CongestionControl.BLOCK)
    put = pub.put
    sub = session.declare_subscriber(src, lambda sample: put(sample.payload, encoding=sample.encoding))
    Path(out).touch()
    try:
        while True:
            time.sleep(1)
    finally:
        sub.undeclare()
        session.close()


# ---- one round per side ------------------------------------------------------------------------------
def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", *args], start_new_session=True)


def _wait_file(path: str, procs: list[subprocess.Popen], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.01)


def _measure(endpoint: str, n: int, size: int, tmp: str, start_middle) -> dict:
    out = os.path.join(tmp, f"r{time.monotonic_ns()}.json")
    sub = _spawn("sub", endpoint, str(n), out)
    procs = [sub]
    try:
        _wait_file(out + ".ready", procs, "the subscriber")
        stop_middle = start_middle(out)
        try:
            pub = _spawn("pub", endpoint, str(n), str(size), out)
            procs.append(pub)
            sub.wait(TIMEOUT_S + 10)
            pub.wait(30)
        finally:
            stop_middle()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    result = json.loads(Path(out).read_text())
    result["msg_s"] = result["n"] / result["seconds"] if result["seconds"] > 0 else 0.0
    return result


def run_relays(endpoint: str, n: int, size: int, tmp: str) -> dict:
    def start(out: str):
        relays = [_spawn("relay", endpoint, IN_KEY, MID_KEY, out + ".r1"),
                  _spawn("relay", endpoint, MID_KEY, OUT_KEY, out + ".r2")]
        for name in (".r1", ".r2"):
            _wait_file(out + name, relays, "a relay")
        time.sleep(0.3)  # declarations propagate asynchronously; the relays have no start barrier

        def stop() -> None:
            for r in relays:
                r.kill()
                r.wait()
        return stop

    return _measure(endpoint, n, size, tmp, start)


def bridge_graph():
    from zflow.dataflow import compile_dict

    return compile_dict({
        "name": "bridge",
        "sources": [{"id": "zin", "zenoh-subscribers": {"in": IN_KEY}}],
        "sinks": [{"id": "zout", "zenoh-publishers": {"out": OUT_KEY}}],
        "links": [{"from": {"node": "zin", "output": "in"}, "to": {"node": "zout", "input": "out"}}],
    }, base_dir=str(ROOT), source_file="bridge.yaml")


def run_bridge(endpoint: str, n: int, size: int, tmp: str) -> dict:
    from zflow.runtime.local_run import run_flow

    def start(out: str):
        stop = threading.Event()
        ready = threading.Event()
        result: dict = {}

        def go() -> None:
            result["run"] = run_flow(bridge_graph(), connect=[endpoint], log=_log, stop=stop,
                                     on_ready=lambda _s: ready.set())

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not ready.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the bridge flow did not start: {result}")

        def finish() -> None:
            stop.set()
            thread.join(30)
        return finish

    return _measure(endpoint, n, size, tmp, start)


def _log(name: str, line: str) -> None:
    if not line.startswith("-- "):
        print(f"  [{name}] {line}", file=sys.stderr)


def _lost(r: dict) -> str:
    lost = sum(b - a + 1 for a, b in r["lost"])
    if not lost:
        return "0"
    shown = ", ".join(f"{a}-{b}" for a, b in r["lost"][:3])
    return f"{lost} ({shown}{', ...' if len(r['lost']) > 3 else ''})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--n", type=int, help="messages per round (default 20000, quick 5000)")
    parser.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    parser.add_argument("--json", metavar="PATH", help="also write every round's figures")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pub":
        endpoint, n, size, out = args.rest
        return ext_pub(endpoint, int(n), int(size), out)
    if args.role == "sub":
        endpoint, n, out = args.rest
        return ext_sub(endpoint, int(n), out)
    if args.role == "relay":
        endpoint, src, dst, out = args.rest
        return relay(endpoint, src, dst, out)

    from zflow.transport import EmbeddedRouter

    n = args.n or (5000 if args.quick else 20000)
    rounds = args.rounds or (1 if args.quick else 3)
    report: dict = {"n": n, "size": args.size, "rounds": []}
    with EmbeddedRouter() as router, tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            report["rounds"].append({"relay": run_relays(router.endpoint, n, args.size, tmp),
                                     "bridge": run_bridge(router.endpoint, n, args.size, tmp)})
    print(f"{n:,} messages of {args.size} B, publisher 'block', {rounds} round(s)")
    print(f"{'side':>22} {'received':>9} {'disorder':>9} {'msg/s':>10}  lost")
    for side, label in (("relay", "hand-written relays"), ("bridge", "zflow bridge flow")):
        for r in report["rounds"]:
            s = r[side]
            print(f"{label:>22} {s['n']:>9,} {s['disorder']:>9} {s['msg_s']:>10,.0f}  {_lost(s)}")
    best = {side: max(r[side]["msg_s"] for r in report["rounds"]) for side in ("relay", "bridge")}
    ratio = best["bridge"] / best["relay"] if best["relay"] else float("nan")
    per_round = [r["bridge"]["msg_s"] / r["relay"]["msg_s"] for r in report["rounds"] if r["relay"]["msg_s"]]
    print(f"ratio zflow / hand-written (best msg/s): {ratio:.2f}x; per round "
          f"{' '.join(f'{x:.2f}x' for x in per_round)} (median {statistics.median(per_round):.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
