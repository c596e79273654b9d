"""The erasure-coded time-series store: zflow's storage engine.

The pipeline, one sub-package per stage::

    ingest (rows -> columns) -> layout (keys, bit packing, sub-columns) -> dedup (bases and
    deviations) -> coding (RLNC, fragments) -> storage_backends (locations)
    query (selector -> planner -> fetch -> rows) <- catalog (metadata, verify, repair)
    serving (the Zenoh storage front of a dataset)

The engine depends on :mod:`storage_backends` (fragment locations, the fragment container
format, the range wire format); nothing there imports the engine.

Public API (what the CLI, the storage front and users call)::

    ds = open_dataset("dataset.json")           # or create_dataset(...), Dataset.create(...)
    ds.ingest({"t": ..., "temp": ...}); ds.flush()
    res = ds.query("temp>30&cols=t,temp")
    ds.verify(); ds.repair()
"""

from __future__ import annotations

from pathlib import Path

from zflow.tsdb.dataset import Dataset, DatasetConfig, load_config
from zflow.tsdb.ingest.infer import infer as infer_schema
from zflow.tsdb.query.planner import Result
from zflow.tsdb.query.selector import Query
from zflow.tsdb.schema import Schema, load_schema

__all__ = [
    "Dataset",
    "DatasetConfig",
    "Query",
    "Result",
    "Schema",
    "create_dataset",
    "infer_schema",
    "load_config",
    "load_schema",
    "open_dataset",
]


def open_dataset(config: str | Path, *, repair: bool = False) -> Dataset:
    """The dataset a config file (schema + locations) names; ``repair`` lets the config's schema
    stand in for a catalog header unreadable on every location."""
    return Dataset.from_config(config, repair=repair)


def create_dataset(config: str | Path) -> Dataset:
    """A new, empty dataset on the config's locations (refused if one of that name exists)."""
    return Dataset.from_config(config, create=True)
