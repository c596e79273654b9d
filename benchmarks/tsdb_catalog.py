"""What checking the catalog costs: opening a dataset (every entry listed, read, CRC-checked and
decoded) and warm queries on it, for this checkout against another (e.g. the main branch), in
one run, interleaved (alternating which goes first), so both see the same machine load.

    python benchmarks/tsdb_catalog.py [--quick] [--against /path/to/other/checkout]

Each round runs a child process per checkout on the same data (synthetic Intel Lab rows in
local-directory locations, k=4, n=6): it ingests, then times ``Dataset.open`` (median of
repetitions) and each query (median of repetitions, warm page cache). Printed: medians per
checkout and the ratio this/other; the CRC share of opening is timed directly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERIES = [
    "filter=temperature>=30&cols=time,temperature",
    "filter=moteid=7;humidity<35&cols=time,humidity",
    "filter=light>600|voltage<2.4&cols=time,light,voltage",
    "cols=moteid&limit=5000",
]


def child(rows: int, object_bytes: int, reps: int) -> dict:
    """Runs inside one checkout (its root first on sys.path)."""
    import zlib

    from zflow.tsdb.dataset import Dataset
    from zflow.tsdb.ingest import synth

    tmp = tempfile.mkdtemp(prefix="tsdb-catalog-bench-")
    locs = [f"file://{tmp}/loc{i}" for i in range(6)]
    ds = Dataset.create(synth.schema("intel", 4, 6, object_bytes), locs)
    ds.ingest(synth.generate(rows))
    ds.flush()
    opens = []
    for _ in range(reps):
        t0 = time.perf_counter()
        Dataset.open("intel", locs).close()
        opens.append(time.perf_counter() - t0)
    ds = Dataset.open("intel", locs)
    blobs = [p.read_bytes() for p in Path(tmp, "loc0", "intel", "catalog").rglob("*") if p.is_file()]
    t0 = time.perf_counter()
    for _ in range(reps):
        for b in blobs:
            zlib.crc32(b[4:])
    crc = (time.perf_counter() - t0) / reps
    out = {"objects": len(ds.catalog.objects), "open_ms": statistics.median(opens) * 1e3,
           "crc_ms": crc * 1e3, "catalog_bytes": sum(map(len, blobs)), "query_ms": {}}
    for q in QUERIES:
        ds.query(q)  # warm up (numba kernels, page cache)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            ds.query(q)
            times.append(time.perf_counter() - t0)
        out["query_ms"][q] = statistics.median(times) * 1e3
    ds.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def run_in(root: Path, rows: int, object_bytes: int, reps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root))
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"import tsdb_catalog as b; print(json.dumps(b.child({rows}, {object_bytes}, {reps})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100k rows, 3 rounds")
    ap.add_argument("--against", type=Path, help="another checkout to compare with")
    ap.add_argument("--rounds", type=int, help="child runs per checkout (default 3 quick, 5 full)")
    args = ap.parse_args()
    rows, rounds, reps = (100_000, 3, 7) if args.quick else (1_000_000, 5, 11)
    rounds = args.rounds or rounds
    object_bytes = 256 << 10
    here = Path(__file__).resolve().parent.parent
    roots = {"this": here} | ({"other": args.against.resolve()} if args.against else {})
    got: dict[str, list[dict]] = {k: [] for k in roots}
    for i in range(rounds):  # alternate the order: neither checkout always runs first
        for name, root in (list(roots.items()) if i % 2 == 0 else list(roots.items())[::-1]):
            got[name].append(run_in(root, rows, object_bytes, reps))
    med = {name: {"open_ms": statistics.median(r["open_ms"] for r in rs),
                  "query_ms": {q: statistics.median(r["query_ms"][q] for r in rs) for q in QUERIES}}
           for name, rs in got.items()}
    first = got["this"][0]
    print(f"{rows:,} rows, {first['objects']} objects, catalog {first['catalog_bytes'] / 1024:.0f} KiB per location; "
          f"CRC32 of every entry: {first['crc_ms']:.2f} ms")
    names = list(roots)
    print(f"{'':52s} " + " ".join(f"{n + ' ms':>10s}" for n in names) + ("   this/other" if len(names) > 1 else ""))
    rows_out = [("open (load + check catalog)", "open_ms", None)] + [(q, "query_ms", q) for q in QUERIES]
    ratios = []
    for label, key, q in rows_out:
        vals = [med[n][key] if q is None else med[n][key][q] for n in names]
        line = f"{label[:52]:52s} " + " ".join(f"{v:10.2f}" for v in vals)
        if len(vals) > 1:
            ratios.append(vals[0] / vals[1])
            line += f"   {vals[0] / vals[1]:.3f}x"
        print(line)
    if ratios:
        print(f"median ratio this/other over open + queries: {statistics.median(ratios):.3f}x")


if __name__ == "__main__":
    main()
