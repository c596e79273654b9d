"""The Python API of the time-series store.

    ds = Dataset.create(schema, ["file:///data/a", "http://127.0.0.1:9001", ...])
    ds.ingest({"time": t, "temperature": temp, ...}); ds.flush()
    res = ds.query("filter=temperature>30;moteid=7&cols=time,humidity")
    res.columns["humidity"], res.report["bytes_fetched"]
    ds.stats(); ds.repair(); ds.verify()

Locations are URIs (``file:///dir``, ``http://host:port``, ``zenoh:name``) or
:class:`storage_backends.base.FragmentStore` objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from storage_backends import open_location as open_backend
from zflow.documents import load_document, validate
from zflow.errors import Problem, RuntimeFailure, UserError
from zflow.tsdb.catalog import records as cat
from zflow.tsdb.ingest.ingestor import Ingestor, ProgressBar
from zflow.tsdb.query.planner import Result, run, run_naive
from zflow.tsdb.query.selector import Query, parse_filter, parse_selector, parse_time_range
from zflow.tsdb.schema import Schema

LOCATION_SCHEMES = ("file://", "dir:", "http://", "zenoh:")


def _check_uri(uri: str) -> str:
    if not uri.startswith(LOCATION_SCHEMES):
        raise ValueError(f"location {uri!r}: expected file:///dir, http://host:port or zenoh:name")
    return uri


class DatasetConfig(BaseModel):
    """``zflow tsdb`` dataset config: the schema (inline or a file) and the locations."""

    model_config = ConfigDict(extra="forbid")
    dataset_schema: Schema | str = Field(alias="schema")
    locations: list[Annotated[str, AfterValidator(_check_uri)]] = Field(min_length=1)
    zenoh: dict[str, Any] | None = Field(default=None, description="session options for zenoh: locations")

    @field_validator("locations")
    @classmethod
    def _distinct(cls, locs: list[str]) -> list[str]:
        if len(set(locs)) != len(locs):
            raise ValueError("locations must be distinct")
        return locs


def open_location(uri: str, zenoh: dict[str, Any] | None = None, session: Any = None) -> Any:
    """A fragment store for a location URI, named by its URI (the catalog's location names)."""
    if not uri.startswith(LOCATION_SCHEMES):
        raise UserError(Problem(f"location {uri!r}: expected file:///dir, http://host:port or zenoh:name"))
    try:
        return open_backend(uri, name=uri, session=session if uri.startswith("zenoh:") else None,
                       connect=(zenoh or {}).get("connect"))
    except ValueError as exc:
        raise UserError(Problem(f"location {uri!r}: {exc}")) from None
    except OSError as exc:  # a local path that is a file, or cannot be created
        path = Path(exc.filename) if exc.filename else None
        what = (f"{path} is a file, not a directory" if path is not None and path.is_file()
                else f"{exc.filename or uri}: {exc.strerror or exc}")
        raise UserError(Problem(f"location {uri!r}: {what}", hint="a file:// location is a directory")) from None


def load_config(path: str | Path) -> tuple[Schema, list[str], dict | None]:
    doc = load_document(path)
    cfg = validate(DatasetConfig, doc)
    schema = cfg.dataset_schema
    if isinstance(schema, str):
        from zflow.tsdb.schema import load_schema

        schema = load_schema(Path(path).parent / schema)
    return schema, cfg.locations, cfg.zenoh


def _match_locations(recorded: list[str], stores: list[Any]) -> list[Any]:
    """Order stores as the catalog recorded them (fragment maps hold location indices): by name
    when the config lists the same locations in another order, by position when it renamed
    them (e.g. a server moved to another port) but kept their number."""
    names = [s.name for s in stores]
    if names == recorded:
        return stores
    if sorted(names) == sorted(recorded):
        by_name = dict(zip(names, stores, strict=True))
        return [by_name[n] for n in recorded]
    if len(names) == len(recorded):
        return stores
    raise UserError(Problem(
        f"the dataset was created on {len(recorded)} locations {recorded}, the config lists "
        f"{len(names)}: {names}", hint="list the same locations (same order if renamed)"))


class Dataset:
    def __init__(self, catalog: cat.Catalog, stores: list[Any]):
        self.catalog = catalog
        self.stores = stores
        self.down: set[int] = set()
        self._ingestor: Ingestor | None = None

    @property
    def schema(self) -> Schema:
        return self.catalog.schema

    @property
    def name(self) -> str:
        return self.schema.name

    # ---- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def create(cls, schema: Schema, locations: list[Any], exist_ok: bool = False,
               zenoh: dict | None = None) -> Dataset:
        stores = [open_location(x, zenoh) if isinstance(x, str) else x for x in locations]
        names = [s.name for s in stores]
        if not exist_ok:
            for s in stores:
                try:
                    if s.exists(cat.schema_key(schema.name)):
                        raise UserError(Problem(f"dataset '{schema.name}' already exists at {s.name}",
                                                hint="use a new name or --exist-ok"))
                except UserError:
                    raise
                except Exception:
                    continue
        if len(stores) < schema.coding.n or len(set(names)) != len(names):
            raise UserError(Problem(
                f"coding n={schema.coding.n} needs {schema.coding.n} distinct locations, got {len(set(names))}",
                hint="add locations or lower coding.n"))
        catalog = cat.Catalog(schema, names)
        cat.write_entry(stores, cat.schema_key(schema.name), catalog.header())
        return cls(catalog, stores)

    @classmethod
    def open(cls, name: str, locations: list[Any], zenoh: dict | None = None,
             header_fallback: Schema | None = None) -> Dataset:
        """Open a dataset; ``header_fallback`` (repair) stands in for a catalog header that is
        unreadable on every location, with the locations in the order given."""
        stores = [open_location(x, zenoh) if isinstance(x, str) else x for x in locations]
        fallback = None if header_fallback is None else cat.Catalog(header_fallback, [s.name for s in stores]).header()
        catalog = cat.load(stores, name, fallback)
        return cls(catalog, _match_locations(catalog.locations, stores))

    @classmethod
    def from_config(cls, path: str | Path, create: bool = False, repair: bool = False) -> Dataset:
        schema, locations, zenoh = load_config(path)
        if create:
            return cls.create(schema, locations, zenoh=zenoh)
        return cls.open(schema.name, locations, zenoh=zenoh, header_fallback=schema if repair else None)

    def reload(self) -> None:
        self.catalog = cat.load(self.stores, self.name)

    def close(self) -> None:
        for s in self.stores:
            try:
                s.close()
            except Exception:
                pass

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- ingest ----------------------------------------------------------------------------------
    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:
            self._ingestor = Ingestor(self)
        return self._ingestor

    def ingest(self, data: dict[str, np.ndarray] | str | Path | Iterable[dict], progress: bool = False,
               skip_bad: bool = False) -> int:
        """Ingest columns (logical values), a CSV/JSONL file, or row dicts; returns rows added
        (buffered rows are sealed by size/age or on :meth:`flush`). Every value is checked
        against the schema first: a bad one raises :class:`UserError` and adds nothing (with
        ``skip_bad``, rows of files or row dicts that cannot be stored are left out instead)."""
        from zflow.tsdb.ingest.readers import rows_to_columns

        if isinstance(data, dict):
            self.ingestor.add(data)
            return len(next(iter(data.values()))) if data else 0
        if isinstance(data, (str, Path)):
            return self.ingest_files([data], progress=progress, skip_bad=skip_bad, commit=False)[0]
        cols = rows_to_columns(list(data), self.schema, skip_bad=skip_bad)
        self.ingestor.add(cols, stored=True)
        return len(next(iter(cols.values())))

    def ingest_files(self, paths: list[str | Path], progress: bool = False, skip_bad: bool = False,
                     commit: bool = True) -> tuple[int, list]:
        """Ingest CSV/JSONL files all or nothing: every file is read and checked before any row
        is written, and (``commit``) the objects become visible together once all are stored.
        Returns (rows added, rows skipped as :class:`~zflow.tsdb.ingest.readers.BadRow`)."""
        from contextlib import nullcontext

        from zflow.tsdb.ingest.readers import parse_file

        parsed = [parse_file(p, self.schema, skip_bad) for p in paths]
        total = sum(p.rows for p in parsed)
        bar = ProgressBar(total, label=f"ingest {self.name}") if progress else None
        step = 1 << 18
        with self.ingestor.transaction() if commit else nullcontext():
            for p in parsed:
                for s in range(0, p.rows, step):
                    part = {c: v[s:s + step] for c, v in p.columns.items()}
                    self.ingestor.add(part, stored=True)
                    if bar:
                        bar.update(len(next(iter(part.values()))))
        if bar:
            bar.close()
        return total, [b for p in parsed for b in p.skipped]

    def flush(self) -> int:
        return len(self.ingestor.flush())

    # ---- queries ---------------------------------------------------------------------------------
    def query(self, selector: str | Query | None = None, *, filter: str | None = None,
              cols: list[str] | None = None, time: str | tuple | None = None,
              limit: int | None = None, naive: bool = False, gap: int | None = None,
              verify: bool = False, checked: bool = True, partial: bool = False) -> Result:
        """Run a query.

        By default (``checked``) every location checks the CRC of each chunk the query's ranges
        touch before serving them (next to the data: same bytes on the wire, one request), and
        a fragment with a bad chunk is decoded from k others, so corruption at rest never
        reaches a result. ``verify`` checks end to end instead: whole checksum chunks and their
        CRCs cross the wire and are checked here (trusts neither location nor network), at the
        cost of fetching more bytes. ``checked=False`` serves raw bytes (measurement only).

        A query answers exactly or not at all: when the catalog lost objects (entries bad on
        every location, no fragment record readable) it raises :class:`RuntimeFailure`, unless
        ``partial`` asks for the rows of the other objects, then ``report["partial"]`` lists
        what is missing."""
        if isinstance(selector, Query):
            q = selector
        elif selector:
            q = parse_selector(selector, self.schema)
        else:
            q = Query()
        if filter:
            q.where = parse_filter(filter, self.schema)
        if cols is not None:
            q.cols = list(cols)
        if time is not None:
            q.time = parse_time_range(time) if isinstance(time, str) else tuple(time)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
                raise UserError(Problem(f"bad limit {limit!r}: expected a non-negative integer", path=("limit",)))
            q.limit = int(limit)
        q.partial = q.partial or partial
        lost = self.catalog.lost
        if lost and not q.partial:
            first = next(iter(sorted(lost)))
            raise RuntimeFailure(
                f"dataset '{self.name}': {len(lost)} object(s) cannot be read, so no query can answer "
                f"exactly (object {first}: {lost[first]}); `zflow tsdb repair` rebuilds what it can, "
                "--allow-partial (selector: partial=1) answers from the other objects, marked partial")
        res = run_naive(self, q) if naive else run(self, q, gap=gap, verify=verify, checked=checked)
        if lost:
            res.report["partial"] = {"objects_lost": sorted(lost), "why": lost}
        if self.catalog.recovered:
            res.report["catalog_recovered"] = sorted(self.catalog.recovered)
        return res

    # ---- maintenance -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        rows = sum(m.n_rows for m in self.catalog.objects.values())
        raw = rows * self.schema.row_bytes
        data = sum(m.layout.data_bytes for m in self.catalog.objects.values())
        padded = sum(m.layout.k * m.layout.frag_size for m in self.catalog.objects.values())
        stored = sum(m.fragment_bytes * len(m.placement) for m in self.catalog.objects.values())
        per_loc = {name: 0 for name in self.catalog.locations}
        for m in self.catalog.objects.values():
            for loc in m.placement:
                per_loc[self.catalog.locations[loc]] += m.fragment_bytes
        c = self.schema.coding
        tolerated = c.n - c.k
        per_col = {}
        for col in self.schema.columns:
            bits = sum(m.n_rows * (m.layout.subcolumns[f"{col.name}.base"].bits + m.columns[col.name].dev_bits)
                       + m.columns[col.name].dict_bits
                       for m in self.catalog.objects.values())
            per_col[col.name] = round(rows * col.bits / max(1, bits), 3)
        return {
            "dataset": self.name, "objects": len(self.catalog.objects), "rows": rows,
            "raw_bytes": raw, "data_bytes": data, "stored_bytes": stored,
            "compression_ratio": round(raw / max(1, data), 3),
            "storage_overhead": round(stored / max(1, raw), 3),
            "coding_overhead": round(stored / max(1, padded), 3),
            "coding": {"k": c.k, "n": c.n}, "locations_lost_tolerated": tolerated,
            "per_location_bytes": per_loc, "column_compression": per_col,
            # objects whose catalog entry nothing can read: their rows and bytes are not counted
            "objects_lost": sorted(self.catalog.lost),
        }

    def repair(self, only: list[str] | None = None) -> dict[str, Any]:
        """Rebuild every missing or corrupted fragment and catalog entry (on ``only`` locations)."""
        from zflow.tsdb.catalog.maintenance import repair

        return repair(self, only)

    def verify(self) -> dict[str, Any]:
        """Check every fragment's chunk checksums; report missing/corrupt ones."""
        from zflow.tsdb.catalog.maintenance import verify

        return verify(self)


