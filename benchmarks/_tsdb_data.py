"""Shared data set-up for the tsdb benchmarks: synthetic Intel Lab rows and the real station
file, ingested into local-directory locations under a temporary directory."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zflow.tsdb.dataset import Dataset  # noqa: E402
from zflow.tsdb.ingest import synth  # noqa: E402

STATION = "tmy3_723170_greensboro.csv"


def station_path() -> Path | None:
    for base in (os.environ.get("ZFLOW_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"):
        if base and (Path(base) / STATION).is_file():
            return Path(base) / STATION
    return None


def bench_args(doc: str | None = None) -> argparse.Namespace:
    """``--quick`` (300k rows, 1 MiB objects) or full scale (2.3M rows, 4 MiB objects)."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--quick", action="store_true", help="300k rows instead of 2.3M, fewer repetitions")
    ap.add_argument("--rows", type=int, help="override the row count")
    args = ap.parse_args()
    args.n_rows = args.rows or (300_000 if args.quick else 2_300_000)
    args.object_bytes = (1 << 20) if args.quick else (4 << 20)
    return args


def intel(rows: int, k: int = 4, n: int = 6, object_bytes: int = 4 << 20,
          tmp: str | None = None) -> tuple[Dataset, dict[str, np.ndarray]]:
    tmp = tmp or tempfile.mkdtemp(prefix="tsdb-bench-")
    data = synth.generate(rows)
    ds = Dataset.create(synth.schema("intel", k, n, object_bytes), [f"file://{tmp}/loc{i}" for i in range(n)])
    ds.ingest(data)
    ds.flush()
    return ds, data


def station(k: int = 4, n: int = 6, object_bytes: int = 256 << 10,
            tmp: str | None = None) -> tuple[Dataset, dict[str, np.ndarray]] | None:
    from zflow.tsdb.ingest.infer import infer
    from zflow.tsdb.ingest.readers import read_csv

    path = station_path()
    if path is None:
        return None
    tmp = tmp or tempfile.mkdtemp(prefix="tsdb-bench-")
    schema, _ = infer(path, "station", k, n)
    schema = schema.model_copy(update={"target_object_bytes": object_bytes})
    data = next(read_csv(path, schema))
    ds = Dataset.create(schema, [f"file://{tmp}/loc{i}" for i in range(n)])
    ds.ingest(data)
    ds.flush()
    return ds, data


def logical(ds: Dataset, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The values as the store returns them (scaled columns as float64, stored rounding)."""
    from zflow.tsdb.layout import ordkeys

    return {c.name: ordkeys.logical_from_stored(ordkeys.stored_from_logical(data[c.name], c), c)
            for c in ds.schema.columns}


def fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares y = a*x + b; returns (a, b, R^2)."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if len(xa) < 2:
        return float("nan"), float("nan"), float("nan")
    a, b = np.polyfit(xa, ya, 1)
    pred = a * xa + b
    ss_res = float(((ya - pred) ** 2).sum())
    ss_tot = float(((ya - ya.mean()) ** 2).sum()) or 1.0
    return float(a), float(b), 1 - ss_res / ss_tot
