"""Scattered range reads: per-range ``get_ranges`` against vectorised ``get_ranges_concat``
on each kind of location (local directory, HTTP range server in-process, Zenoh location behind
an embedded router), same ranges, same run; plain and checked (CRC verified at the location).

    python benchmarks/tsdb_ranges.py [--quick]

Ranges: sorted random starts over a 4 MB fragment, 1..20 bytes each (the shape of a scattered
query's projection phase). Latency = median of repetitions; speed-up = per-range / vectorised.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from _tsdb_data import ROOT  # noqa: F401 - puts the project on sys.path


def timed(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def bench(store, label: str, counts: list[int], reps: int, rows: list) -> None:
    from storage_backends import fragment_format
    from zflow.tsdb.coding import fragments
    from zflow.tsdb.coding.rlnc import CodingParams

    rng = np.random.default_rng(1)
    payload = rng.integers(0, 256, (4, 4 << 20), dtype=np.uint8)
    blob = bytes(fragments.make_fragments(payload, CodingParams(4, 6, 1))[0])
    store.put("bench/obj/1/0", blob)
    lo, hi = fragment_format.PAYLOAD_OFFSET, len(blob) - 4096
    for n in counts:
        starts = np.sort(rng.integers(lo, hi, n))
        ends = starts + rng.integers(1, 21, n)
        pairs = list(zip(starts.tolist(), ends.tolist(), strict=True))
        for verify in (False, True):
            a = store.get_ranges("bench/obj/1/0", pairs, verify=verify)
            b, _off = store.get_ranges_concat("bench/obj/1/0", starts, ends, verify=verify)
            assert b.tobytes() == b"".join(a)
            t_list = timed(lambda v=verify, p=pairs: store.get_ranges("bench/obj/1/0", p, verify=v), reps)
            t_vec = timed(lambda v=verify, s=starts, e=ends: store.get_ranges_concat(
                "bench/obj/1/0", s, e, verify=v), reps)
            rows.append((label, n, "checked" if verify else "plain", t_list * 1e3, t_vec * 1e3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer range counts and repetitions")
    args = ap.parse_args()
    counts = [100, 10_000] if args.quick else [100, 1_000, 10_000, 100_000]
    reps = 3 if args.quick else 7
    from storage_backends.http_range import HttpRangeStore
    from storage_backends.http_range_server import serve_in_thread
    from storage_backends.local_dir import LocalDirStore
    from storage_backends.zenoh_location import LocationServer, ZenohLocationStore
    from zflow.transport.session import EmbeddedRouter, open_session

    rows: list = []
    bench(LocalDirStore(tempfile.mkdtemp(prefix="tsdb-ranges-")), "dir", counts, reps, rows)
    server, url = serve_in_thread(tempfile.mkdtemp(prefix="tsdb-ranges-"))
    try:
        with HttpRangeStore(url) as s:
            bench(s, "http", counts, reps, rows)
    finally:
        server.shutdown()
        server.server_close()
    with EmbeddedRouter() as router, open_session(router.client_options()) as ses, \
            LocationServer(ses, "bench", tempfile.mkdtemp(prefix="tsdb-ranges-")):
        s = ZenohLocationStore(None, "bench", connect=[router.endpoint])
        try:
            bench(s, "zenoh", counts, reps, rows)
        finally:
            s.close()
    print(f"{'location':8s} {'ranges':>7s} {'mode':8s} {'get_ranges ms':>13s} {'concat ms':>9s} {'speed-up':>8s}")
    for label, n, mode, t_list, t_vec in rows:
        print(f"{label:8s} {n:7d} {mode:8s} {t_list:13.2f} {t_vec:9.2f} {t_list / t_vec:7.1f}x")
    big = [r for r in rows if r[1] >= 10_000]
    print(f"\nsummary: >= 10^4 ranges, vectorised speed-up median "
          f"{statistics.median(r[3] / r[4] for r in big):.1f}x, min {min(r[3] / r[4] for r in big):.1f}x")


if __name__ == "__main__":
    main()
