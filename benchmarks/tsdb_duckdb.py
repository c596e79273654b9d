"""Query latency and bytes read: the store (k=4, n=6, local-directory locations) against
DuckDB on a Parquet file of the same data, same queries, same process, warm page cache.

    python benchmarks/tsdb_duckdb.py [--quick]        # needs: pip install duckdb pyarrow

Parquet holds the logical values (scaled columns as DOUBLE), row groups of the store's object
size, pyarrow's default (snappy) compression; DuckDB's external file cache is off so every
query reads the file. Bytes read = this process's read() bytes (/proc/self/io rchar) during
the query, for both systems. Latency = median of repetitions. "selective" = selectivity <= 1%.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _tsdb_data import bench_args, intel, logical, station


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def timed(fn, reps: int) -> tuple[float, int, object]:
    times, reads, out = [], [], None
    for _ in range(reps):
        r0 = rchar()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        reads.append(rchar() - r0)
    return statistics.median(times), int(statistics.median(reads)), out


def intel_queries(ref):
    t, temp = ref["time"], ref["temperature"]
    out = []
    for s in (0.0001, 0.001, 0.01, 0.1, 1.0):
        hi = t[max(0, int(s * len(t)) - 1)]
        out.append((s, f"time={t[0]:.3f}..{hi:.3f}&cols=time,moteid,temperature",
                    f"SELECT time, moteid, temperature FROM d WHERE time BETWEEN {t[0]:.3f} AND {hi:.3f}",
                    (t >= t[0]) & (t <= hi)))
        thr = float(np.quantile(temp, s, method="lower"))
        out.append((s, f"filter=temperature<={thr}&cols=time,humidity",
                    f"SELECT time, humidity FROM d WHERE temperature <= {thr}", temp <= thr))
        if s * 54 <= 1:
            hi2 = t[max(0, int(s * 54 * len(t)) - 1)]
            out.append((s, f"filter=moteid=7&time={t[0]:.3f}..{hi2:.3f}&cols=time,temperature",
                        f"SELECT time, temperature FROM d WHERE moteid = 7 AND time BETWEEN {t[0]:.3f} AND {hi2:.3f}",
                        (ref["moteid"] == 7) & (t >= t[0]) & (t <= hi2)))
    return out


def station_queries(ref):
    x = ref["dry_bulb"]
    out = []
    for s in (0.001, 0.01, 0.1, 1.0):
        thr = float(np.quantile(x, 1 - s, method="higher"))
        out.append((s, f"filter=dry_bulb>={thr}&cols=time,dry_bulb,rhum",
                    f"SELECT time, dry_bulb, rhum FROM d WHERE dry_bulb >= {thr}", x >= thr))
    return out


def run(ds, data, label, make, reps, tmp) -> list[dict]:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref = logical(ds, data)
    rows_per_group = max(m.n_rows for m in ds.catalog.objects.values())
    path = Path(tmp) / f"{label}.parquet"
    pq.write_table(pa.table(ref), path, row_group_size=rows_per_group)
    con = duckdb.connect()
    try:
        con.execute("SET enable_external_file_cache = false")
    except Exception:
        pass
    con.execute("SET threads = 2")
    con.execute(f"CREATE VIEW d AS SELECT * FROM read_parquet('{path}')")
    out = []
    for s, sel, sql, mask in make(ref):
        ds.query(sel)
        con.execute(sql).fetchnumpy()  # warm both
        t_z, b_z, res = timed(lambda sel=sel: ds.query(sel), reps)
        t_d, b_d, dres = timed(lambda sql=sql: con.execute(sql).fetchnumpy(), reps)
        n = int(mask.sum())
        assert res.report["rows"] == n and len(next(iter(dres.values()))) == n, (sel, n)
        out.append({"data": label, "sel": float(mask.mean()), "target": s, "selector": sel, "ms_z": t_z * 1e3,
                    "ms_d": t_d * 1e3, "read_z": b_z, "read_d": b_d, "fetched": res.report["bytes_fetched"],
                    "rows": n})
    con.close()
    return out


def main() -> None:
    args = bench_args(__doc__)
    reps = 3 if args.quick else 7
    tmp = tempfile.mkdtemp(prefix="tsdb-duck-")
    ds, data = intel(args.n_rows, object_bytes=args.object_bytes, tmp=tmp)
    results = run(ds, data, "intel", intel_queries, reps, tmp)
    s = station(tmp=tempfile.mkdtemp(prefix="tsdb-duck-"))
    if s is not None:
        results += run(*s, "station", station_queries, reps, tmp)
    print(f"{'data':7s} {'sel%':>8s} {'rows':>8s} {'zflow ms':>9s} {'duckdb ms':>9s} {'ratio':>6s} "
          f"{'zflow read':>11s} {'duckdb read':>11s} {'read ratio':>10s}  query")
    for r in results:
        print(f"{r['data']:7s} {100 * r['sel']:8.3f} {r['rows']:8d} {r['ms_z']:9.2f} {r['ms_d']:9.2f} "
              f"{r['ms_z'] / r['ms_d']:6.2f} {r['read_z']:11d} {r['read_d']:11d} "
              f"{r['read_z'] / max(1, r['read_d']):10.3f}  {r['selector'][:70]}")
    sel = [r for r in results if r["sel"] <= 0.01]
    ratios = [r["ms_z"] / r["ms_d"] for r in sel]
    reads = [r["read_z"] / max(1, r["read_d"]) for r in sel]
    print(f"\nsummary (target: latency within 2x of DuckDB for selective queries, with a fraction of its bytes)\n"
          f"  selective queries (sel <= 1%): {len(sel)}; latency zflow/duckdb median {statistics.median(ratios):.2f}x, "
          f"max {max(ratios):.2f}x; bytes read zflow/duckdb median {statistics.median(reads):.3f}")
    allr = [r["ms_z"] / r["ms_d"] for r in results]
    print(f"  all queries: latency ratio median {statistics.median(allr):.2f}x")


if __name__ == "__main__":
    main()
