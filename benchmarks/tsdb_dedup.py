"""Compression: generalized deduplication (addressable) against zstd level 3 and raw.

    python benchmarks/tsdb_dedup.py [--quick]

Per column and for the whole dataset, on the synthetic Intel Lab data and the real station
file. raw = the stored fixed-width bytes; GD = bit-packed base-id and deviation sub-columns
plus the per-object base dictionary (what the catalog records); zstd-3 compresses the same raw
column bytes per object (the same unit GD works on) and, for reference, per whole column.
Every GD column is checked to round-trip exactly.
"""

from __future__ import annotations

import time

import numpy as np
from _tsdb_data import bench_args, intel, station

SENSOR = ("temperature", "humidity", "light", "voltage")


def measure(ds, data, label: str) -> list[dict]:
    import zstandard

    from zflow.tsdb.layout import ordkeys

    zc = zstandard.ZstdCompressor(level=3)
    objs = ds.catalog.sorted_objects()
    rows = []
    full = ds.query()  # exact round trip of every column
    for col in ds.schema.columns:
        stored = ordkeys.stored_from_logical(data[col.name], col)
        expect = ordkeys.logical_from_stored(stored, col)
        assert np.array_equal(full.columns[col.name], expect), col.name
        raw = stored.nbytes
        gd_bits = 0
        z_obj = 0
        start = 0
        t0 = time.perf_counter()
        for m in objs:
            cm = m.columns[col.name]
            gd_bits += m.n_rows * (m.layout.subcolumns[f"{col.name}.base"].bits + cm.dev_bits)
            gd_bits += cm.dict_bits
            z_obj += len(zc.compress(stored[start : start + m.n_rows].tobytes()))
            start += m.n_rows
        z_col = len(zc.compress(stored.tobytes()))
        rows.append({"data": label, "column": col.name, "type": col.type + (f"/s{col.scale}" if col.scale else ""),
                     "raw": raw, "gd": (gd_bits + 7) // 8, "zstd": z_obj, "zstd_col": z_col,
                     "ms": (time.perf_counter() - t0) * 1e3})
    return rows


def main() -> None:
    args = bench_args(__doc__)
    ds, data = intel(args.n_rows, object_bytes=args.object_bytes)
    results = measure(ds, data, "intel")
    s = station()
    if s is not None:
        results += measure(*s, "station")
    print(f"{'data':7s} {'column':18s} {'type':9s} {'raw B':>10s} {'GD B':>10s} {'zstd3 B':>10s} "
          f"{'GD x':>6s} {'zstd3 x':>7s} {'GD/zstd3':>8s} {'zstd3 whole-col x':>17s}")
    for r in results:
        print(f"{r['data']:7s} {r['column']:18s} {r['type']:9s} {r['raw']:10d} {r['gd']:10d} {r['zstd']:10d} "
              f"{r['raw'] / r['gd']:6.2f} {r['raw'] / r['zstd']:7.2f} {r['zstd'] / r['gd']:8.2f} "
              f"{r['raw'] / r['zstd_col']:17.2f}")
    print("\nsummary (target: GD ratio >= zstd-3 on the sensor columns; exact round trips checked)")
    for dl in sorted({r["data"] for r in results}):
        rs = [r for r in results if r["data"] == dl]
        raw, gd, z = (sum(r[k] for r in rs) for k in ("raw", "gd", "zstd"))
        print(f"  {dl:7s} whole dataset: GD {raw / gd:.2f}x, zstd-3 {raw / z:.2f}x (per object), "
              f"zstd-3 whole columns {raw / sum(r['zstd_col'] for r in rs):.2f}x")
        if dl == "intel":
            for r in rs:
                if r["column"] in SENSOR:
                    verdict = "GD >= zstd-3" if r["zstd"] >= r["gd"] else "GD < zstd-3"
                    print(f"    sensor {r['column']:12s}: GD {r['raw'] / r['gd']:.2f}x vs zstd-3 "
                          f"{r['raw'] / r['zstd']:.2f}x  ({verdict})")
        else:
            wins = sum(1 for r in rs if r["zstd"] >= r["gd"])
            print(f"    columns where GD >= zstd-3: {wins}/{len(rs)}")


if __name__ == "__main__":
    main()
