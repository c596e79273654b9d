"""Query efficiency of the range-fetching plan against the naive plan (fetch + decode whole
objects), over selectivities 0.01%..100% and 1..all projected columns.

    python benchmarks/tsdb_query.py [--quick]

Families: ``time`` (a time range: matching rows contiguous), ``value`` (``temperature <= q``:
matching rows scattered over every object), ``mote`` (``moteid = 7`` AND a time range) on the
synthetic Intel Lab data; ``value`` (``dry_bulb >= q``) on the real station file.

bytes needed = the distinct bytes that hold the values the plan must read (filter sub-columns
of unpruned objects, deviations of undecided rows, projected values of matching rows);
efficiency = needed / fetched. Each query runs with the two coalescing policies the planner
uses: ``local`` (merge the smallest gaps within a byte budget of 5% of the bytes needed: a range
costs CPU, not wire bytes) and ``remote`` (merge gaps under 30 bytes, the per-range cost of an
HTTP/Zenoh multi-range request; ``wire`` = payload + 30 B per range). The naive
plan fetches all k data fragments of every object that min/max pruning keeps. Fits: bytes
fetched against result size per family (slope, intercept = per-query overhead, R^2).
Every result is checked against a numpy evaluation of the same query.
"""

from __future__ import annotations

import time

import numpy as np
from _tsdb_data import bench_args, fit, intel, logical, station

from zflow.tsdb.query.fetch import REMOTE_GAP
from zflow.tsdb.query.planner import _may_match, compile_where, effective_where
from zflow.tsdb.query.selector import parse_selector

SELECTIVITIES = [0.0001, 0.001, 0.01, 0.05, 0.1, 0.3, 1.0]


def intel_queries(ref: dict[str, np.ndarray], names: list[str]) -> list[tuple]:
    t, temp = ref["time"], ref["temperature"]
    projections = {"1": "humidity", "3": "time,moteid,humidity", "all": ",".join(names)}
    out = []
    for s in SELECTIVITIES:
        hi = t[max(0, int(s * len(t)) - 1)]
        thr = float(np.quantile(temp, s, method="lower"))
        for label, cols in projections.items():
            out.append(("time", f"time={t[0]:.3f}..{hi:.3f}&cols={cols}", s, label, (t >= t[0]) & (t <= hi)))
            out.append(("value", f"filter=temperature<={thr}&cols={cols}", s, label, temp <= thr))
        if s * 54 <= 1:
            hi2 = t[max(0, int(s * 54 * len(t)) - 1)]
            out.append(("mote", f"filter=moteid=7&time={t[0]:.3f}..{hi2:.3f}&cols=time,temperature", s, "2",
                        (ref["moteid"] == 7) & (t <= hi2)))
    return out


def station_queries(ref: dict[str, np.ndarray], names: list[str]) -> list[tuple]:
    x = ref["dry_bulb"]
    projections = {"1": "ghi", "3": "time,dry_bulb,rhum", "all": ",".join(names)}
    out = []
    for s in SELECTIVITIES:
        thr = float(np.quantile(x, 1 - s, method="higher"))
        for label, cols in projections.items():
            out.append(("value", f"filter=dry_bulb>={thr}&cols={cols}", s, label, x >= thr))
    return out


def measure(ds, data, label: str, make) -> list[dict]:
    ref = logical(ds, data)
    naive_obj = {m.oid: m.layout.k * m.layout.frag_size for m in ds.catalog.objects.values()}
    rows = []
    for family, sel, target, proj, mask in make(ref, ds.schema.names):
        t0 = time.perf_counter()
        local = ds.query(sel)  # local-directory policy: merge smallest gaps within a 5% byte budget
        dt = time.perf_counter() - t0
        remote = ds.query(sel, gap=REMOTE_GAP)
        for res in (local, remote):
            for c, v in res.columns.items():
                assert np.array_equal(v, ref[c][mask]), (sel, c)
        compiled = compile_where(effective_where(parse_selector(sel, ds.schema), ds), ds)
        kept = [m for m in ds.catalog.objects.values() if _may_match(m, compiled)]
        naive = sum(naive_obj[m.oid] for m in kept)
        fcols = {c for conj in compiled for c, _ in conj}
        bound = sum(m.layout.subcolumns[f"{c}.{k}"].stream_size for m in kept for c in fcols for k in ("base", "dev"))
        assert local.report["filter_bytes"] <= bound, (sel, local.report["filter_bytes"], bound)
        lr, rr = local.report, remote.report
        rows.append({"data": label, "family": family, "sel": float(mask.mean()), "proj": proj,
                     "target": target, "rows": lr["rows"], "result": lr["result_bytes"], "needed": lr["bytes_needed"],
                     "fetched": lr["bytes_fetched"], "ranges": lr["ranges"], "requests": lr["requests"],
                     "filter": lr["filter_bytes"], "proj_bytes": lr["projection_bytes"],
                     "r_fetched": rr["bytes_fetched"], "r_wire": rr["bytes_fetched"] + REMOTE_GAP * rr["ranges"],
                     "r_needed": rr["bytes_needed"], "naive": naive, "ms": dt * 1e3})
    return rows


def main() -> None:
    args = bench_args(__doc__)
    t0 = time.perf_counter()
    ds, data = intel(args.n_rows, object_bytes=args.object_bytes)
    st = ds.stats()
    print(f"intel: {st['rows']:,} rows, {st['objects']} objects, k={st['coding']['k']} n={st['coding']['n']}, "
          f"ingest {time.perf_counter() - t0:.1f}s, compression {st['compression_ratio']}x")
    results = measure(ds, data, "intel", intel_queries)
    s = station()
    if s is not None:
        results += measure(*s, "station", station_queries)
    print(f"{'data':7s} {'family':6s} {'sel%':>8s} {'proj':>4s} {'rows':>8s} {'result':>9s} {'needed':>9s} "
          f"| {'local':>9s} {'eff':>5s} {'ranges':>6s} | {'remote':>9s} {'eff':>5s} {'wire':>9s} "
          f"| {'naive':>9s} {'naive/wire':>10s} {'ms':>6s}")
    for r in results:
        eff = r["needed"] / max(1, r["fetched"]) if r["fetched"] else 1.0
        reff = r["r_needed"] / max(1, r["r_fetched"]) if r["r_fetched"] else 1.0
        print(f"{r['data']:7s} {r['family']:6s} {100 * r['sel']:8.3f} {r['proj']:>4s} {r['rows']:8d} "
              f"{r['result']:9d} {r['needed']:9d} | {r['fetched']:9d} {eff:5.2f} {r['ranges']:6d} | "
              f"{r['r_fetched']:9d} {reff:5.2f} {r['r_wire']:9d} | {r['naive']:9d} "
              f"{r['naive'] / max(1, r['r_wire']):10.1f} {r['ms']:6.1f}")
    print("\nsummary (targets: efficiency >= 0.9 when selectivity >= 1%; fetched linear in result, R^2 >= 0.99)")
    for dl in sorted({r["data"] for r in results}):
        for fam in sorted({r["family"] for r in results if r["data"] == dl}):
            rs = [r for r in results if r["data"] == dl and r["family"] == fam]
            big = [r for r in rs if r["target"] >= 0.01 and r["fetched"]]
            eff = [r["needed"] / r["fetched"] for r in big]
            reff = [r["r_needed"] / r["r_fetched"] for r in big]
            a, b, r2 = fit([r["result"] for r in rs], [r["fetched"] for r in rs])
            ra, rb, rr2 = fit([r["result"] for r in rs], [r["r_wire"] for r in rs])
            print(f"  {dl:7s} {fam:6s} local : min eff (sel>=1%) {min(eff, default=float('nan')):.3f}; "
                  f"fetched = {a:.3f} x result + {b:,.0f} B, R^2 {r2:.4f}")
            pa, pb, pr2 = fit([r["result"] for r in rs], [r["proj_bytes"] for r in rs])
            print(f"  {dl:7s} {fam:6s} local : projection phase = {pa:.3f} x result + {pb:,.0f} B, R^2 {pr2:.4f}; "
                  f"filter phase (per-query overhead) max {max(r['filter'] for r in rs):,} B "
                  f"(checked <= the filter columns of the unpruned objects, every query)")
            print(f"  {dl:7s} {fam:6s} remote: min eff (sel>=1%) {min(reff, default=float('nan')):.3f}; "
                  f"wire    = {ra:.3f} x result + {rb:,.0f} B, R^2 {rr2:.4f}; "
                  f"naive/wire median {np.median([r['naive'] / max(1, r['r_wire']) for r in rs]):.1f}x")


if __name__ == "__main__":
    main()
