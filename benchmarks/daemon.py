"""Edge daemon figures, each next to a baseline measured in the same run.

    python benchmarks/daemon.py [--quick]

- idle daemon RSS and start-to-ready, against a bare Python process holding one Zenoh session;
- instance create -> first data at the sink, 3-node flow on 2 daemons, against the same flow
  run locally by the runtime (one machine, no placement, no shipping);
- data flowing again after a daemon is killed (re-placement), against the Zenoh lease;
- placement decisions per second, 1,000 nodes over 100 pools, against the 10,000/s target.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from daemon_helpers import (  # noqa: E402
    DaemonProcess,
    daemon_processes,
    env,
    lines,
    pipeline,
    wait_until,
    write_operators,
)

BASELINE = """
import sys, time, zenoh
from zflow.transport import SessionOptions, make_config
s = zenoh.open(make_config(SessionOptions(mode="client", connect=[sys.argv[1]])))
open(sys.argv[2], "w").write("ready")
time.sleep(60)
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_daemon(endpoint: str, tmp: Path) -> dict[str, float]:
    ready = tmp / "baseline.ready"
    t0 = time.perf_counter()
    base = subprocess.Popen([sys.executable, "-c", BASELINE, endpoint, str(ready)], env=env())
    try:
        wait_until(ready.exists, 20, 0.005)
        base_ready = time.perf_counter() - t0
        time.sleep(1.0)
        base_rss = rss_kib(base.pid)
    finally:
        base.kill()
        base.wait()
    t0 = time.perf_counter()
    d = DaemonProcess("idle", tmp / "idle", [endpoint], "--quiet")
    try:
        wait_until(lambda: d.ready.exists(), 20, 0.005)
        ready_s = time.perf_counter() - t0
        time.sleep(1.0)
        rss = rss_kib(d.proc.pid)
    finally:
        d.kill()
    return {"rss_mib": rss / 1024, "base_rss_mib": base_rss / 1024, "ready_s": ready_s, "base_ready_s": base_ready}


def create_to_first_data(endpoint: str, tmp: Path, router_session) -> dict[str, float]:
    from zflow.daemon.instance_deploy import create_instance, delete_instance
    from zflow.runtime.local_run import run_flow

    ops = write_operators(tmp / "ops")
    # baseline: the same flow, run locally by the runtime, until its first sample arrives
    local_out = tmp / "local.jsonl"
    import threading

    g = pipeline(ops, local_out, flow="local", period=0.01)
    t0 = time.perf_counter()
    th = threading.Thread(target=run_flow, args=(g,), kwargs={"connect": [endpoint], "log": None,
                                                              "duration": 3.0}, daemon=True)
    th.start()
    wait_until(lambda: lines(local_out) > 0, 30, 0.002)
    local_s = time.perf_counter() - t0
    th.join(10)
    out = tmp / "out.jsonl"
    specs = [("d1", tmp / "d1"), ("d2", tmp / "d2")]
    with daemon_processes(specs, [endpoint]) as procs:
        t0 = time.perf_counter()
        rec = create_instance(router_session, pipeline(ops, out, period=0.01), instance="bench", policy="spread")
        created_s = time.perf_counter() - t0
        wait_until(lambda: lines(out) > 0, 30, 0.002)
        first_s = time.perf_counter() - t0
        victim = rec.placement["dbl"].split("/")[0]
        next(p for p in procs if p.id == victim).kill()
        t0, n = time.perf_counter(), lines(out)
        if not wait_until(lambda: lines(out) > n + 1, 30, 0.005):
            for d in ("d1", "d2"):
                print(f"--- {d} log\n" + (tmp / d / "daemon.log").read_text()[-3000:], file=sys.stderr)
        replaced_s = time.perf_counter() - t0
        with contextlib.suppress(Exception):
            delete_instance(router_session, "bench")
    return {"create_s": created_s, "first_data_s": first_s, "local_first_data_s": local_s,
            "replaced_s": replaced_s}


def placement_rate(rounds: int) -> dict[str, float]:
    from zflow.scheduler.model import Demand, Pool
    from zflow.scheduler.node_placement import Placer

    rng = random.Random(7)
    pools = [Pool(f"d{i // 4:03d}", f"p{i % 4}", arch=rng.choice(["x86_64", "aarch64"]),
                  site=rng.choice("abc"), cpu=64, memory=2**38, gpu=rng.choice([0, 1]),
                  performance=rng.randint(0, 100), energy=rng.randint(0, 100), cost=rng.randint(0, 100))
             for i in range(100)]
    demands = [Demand(f"n{j}", cpu=0.5, arch=(rng.choice(["x86_64", "aarch64"]),) if j % 3 == 0 else (),
                      sites=(rng.choice("abc"),) if j % 5 == 0 else (),
                      weights=(rng.choice([1.0, 2.0]), 1.0, rng.choice([0.5, 1.0]))) for j in range(1000)]
    out = {}
    for policy in ("weighted", "spread"):
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            Placer(pools, policy).place_all(demands)
            best = min(best, time.perf_counter() - t0)
        out[policy] = 1000 / best
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from zflow.transport import EmbeddedRouter, open_session

    tmp = Path(tempfile.mkdtemp(prefix="zflow-bench-daemon-"))
    try:
        with EmbeddedRouter() as router, open_session(router.client_options()) as s:
            idle = idle_daemon(router.endpoint, tmp)
            print(f"idle daemon RSS           {idle['rss_mib']:6.1f} MiB   (bare zenoh client "
                  f"{idle['base_rss_mib']:.1f} MiB, x{idle['rss_mib'] / idle['base_rss_mib']:.2f}; target <= 45)")
            print(f"daemon start-to-ready     {idle['ready_s']:6.2f} s     (bare zenoh client "
                  f"{idle['base_ready_s']:.2f} s, x{idle['ready_s'] / idle['base_ready_s']:.2f}; target <= 1.5)")
            flow = create_to_first_data(router.endpoint, tmp, s)
            print(f"instance create           {flow['create_s']:6.2f} s     (place + ship + load on 2 daemons + barrier)")
            print(f"create -> first data      {flow['first_data_s']:6.2f} s     (same flow run locally "
                  f"{flow['local_first_data_s']:.2f} s, x{flow['first_data_s'] / flow['local_first_data_s']:.2f})")
            print(f"daemon killed -> data     {flow['replaced_s']:6.2f} s     (target <= 5; Zenoh default lease 10 s)")
        rates = placement_rate(3 if args.quick else 10)
        for policy, rate in rates.items():
            print(f"placement ({policy:8s})    {rate:8.0f} decisions/s  (1,000 nodes / 100 pools; "
                  f"x{rate / 10000:.1f} the 10,000/s target)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
