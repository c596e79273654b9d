"""Buffering rows and sealing them into erasure-coded objects.

Rows arrive as column batches (from files, numpy, or Zenoh puts) and are buffered until the
object's estimated size reaches ``target_object_bytes`` (or ``seal_seconds`` passed since the
first buffered row). Sealing: logical values -> stored ints -> order-preserving keys ->
generalized dedup per column -> bit-packed sub-columns -> column-major layout over k data
fragments -> RLNC encode to n fragments -> one fragment per location -> catalog entry
replicated to every location.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from storage_backends.base import StoreError
from storage_backends.fragment_format import fragment_size
from zflow.errors import Problem, RuntimeFailure, UserError, did_you_mean
from zflow.tsdb.catalog.records import ColumnMeta, ObjectMeta, fragment_key, object_key, write_entry
from zflow.tsdb.dedup import generalized as dedup
from zflow.tsdb.ingest.fragment_placement import place
from zflow.tsdb.layout import bitpack, ordkeys
from zflow.tsdb.layout.object_layout import assemble, plan_layout

if TYPE_CHECKING:
    from zflow.tsdb.dataset import Dataset


def new_object_id() -> str:
    """Sortable by creation time, unique across writers."""
    return f"{time.time_ns():020d}-{secrets.token_hex(3)}"


def normalise_batch(ds: Dataset, batch: dict[str, np.ndarray], stored: bool = False) -> dict[str, np.ndarray]:
    """Check a column batch against the schema and convert to stored dtypes (``stored``: the
    values already are stored values, checked by the reader)."""
    schema = ds.schema
    unknown = [k for k in batch if k not in schema.names]
    missing = [c for c in schema.names if c not in batch]
    problems = [Problem(f"unknown column '{k}'", hint=did_you_mean(k, schema.names)) for k in unknown]
    problems += [Problem(f"missing column '{c}'") for c in missing]
    if problems:
        raise UserError(problems)
    lens = {len(np.atleast_1d(v)) for v in batch.values()}
    if len(lens) != 1:
        raise UserError(f"columns have different lengths: {sorted(lens)}")
    if stored:
        return {c.name: np.asarray(batch[c.name], dtype=c.dtype) for c in schema.columns}
    return {c.name: ordkeys.stored_from_logical(np.atleast_1d(batch[c.name]), c) for c in schema.columns}


def seal(ds: Dataset, cols: dict[str, np.ndarray], commit: bool = True) -> ObjectMeta:
    """Encode one object from stored-dtype columns and place its fragments (each carrying a
    piece of the object's catalog entry); ``commit`` also writes the catalog entry, which is
    what makes the rows visible."""
    from zflow.tsdb.coding.fragments import code_record, make_fragments
    from zflow.tsdb.coding.rlnc import CodingParams

    schema = ds.schema
    n_rows = len(next(iter(cols.values())))
    specs: list[tuple[str, int]] = []
    streams: dict[str, bytes] = {}
    metas: dict[str, ColumnMeta] = {}
    for c in schema.columns:
        keys = ordkeys.to_keys(cols[c.name], c)
        kmin, kmax = int(keys.min()), int(keys.max())
        values, width, trend = keys, c.bits, None
        if c.dedup:
            split = dedup.choose_split(keys, c.bits)
            fitted = dedup.fit_trend(keys, kmin, kmax)
            if fitted is not None:  # counters/timestamps: dedup residuals around a line if smaller
                t, u = fitted
                uw = max(1, t.umax.bit_length())
                tsplit = dedup.choose_split(u, uw)
                if tsplit.total_bits < 0.9 * split.total_bits:
                    split, values, width, trend = tsplit, u, uw, t
        else:
            split = dedup.Split(c.bits, np.zeros(1, dtype=np.uint64), n_rows * c.bits)
        ids, dev = dedup.split_keys(values, split)
        bb = split.base_bits
        specs += [(f"{c.name}.base", bb), (f"{c.name}.dev", split.dev_bits)]
        streams[f"{c.name}.base"] = bitpack.pack(ids, bb)
        streams[f"{c.name}.dev"] = bitpack.pack(dev, split.dev_bits)
        metas[c.name] = ColumnMeta(split.dev_bits, split.bases, kmin, kmax, width, trend)
    coding = schema.coding
    layout = plan_layout(specs, n_rows, coding.k)
    data = assemble(layout, streams)
    params = CodingParams(coding.k, coding.n, coding.seed)
    oid = new_object_id()
    placement = place(oid, coding.n, [st.name for st in ds.stores])
    meta = ObjectMeta(oid, n_rows, layout, metas, placement, fragment_size(layout.frag_size, schema.chunk_size))
    pieces = code_record(meta.record(), params)  # 1/k of the entry per fragment, any k give it back
    meta.fragment_bytes += len(pieces[0])
    frags = make_fragments(data, params, chunk_size=schema.chunk_size, records=pieces)
    for i, blob in enumerate(frags):
        store = ds.stores[placement[i]]
        try:
            store.put(fragment_key(schema.name, oid, i), blob)
        except Exception as exc:  # a location refusing a write stops the ingest loudly
            drop_fragments(ds, meta)
            raise RuntimeFailure(f"location {store.name} refused fragment {i} of {oid}: {exc}") from exc
    if commit:
        commit_objects(ds, [meta])
    return meta


def commit_objects(ds: Dataset, metas: list[ObjectMeta]) -> None:
    """Write the catalog entries of sealed objects (to every location): their rows become visible."""
    for meta in metas:
        write_entry(ds.stores, object_key(ds.schema.name, meta.oid), meta.to_dict())
        ds.catalog.objects[meta.oid] = meta


def drop_fragments(ds: Dataset, meta: ObjectMeta) -> int:
    """Delete an uncommitted object's fragments, best effort; how many were deleted."""
    done = 0
    for i, loc in enumerate(meta.placement):
        try:
            ds.stores[loc].delete(fragment_key(ds.schema.name, meta.oid, i))
            done += 1
        except (StoreError, OSError):
            pass
    return done


class Ingestor:
    """Buffers column batches and seals objects by size or age."""

    def __init__(self, ds: Dataset, on_seal: Callable[[ObjectMeta], None] | None = None):
        self.ds = ds
        self.buf: list[dict[str, np.ndarray]] = []
        self.rows = 0
        self.first_at: float | None = None
        self.on_seal = on_seal
        self.row_bytes = ds.schema.row_bytes
        self.target_rows = max(8, ds.schema.target_object_bytes // max(1, self.row_bytes))
        self.pending: list[ObjectMeta] | None = None  # sealed, not committed (inside a transaction)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: objects sealed inside become visible together at the end; on any
        error their fragments are deleted and buffered rows dropped, so nothing is half-ingested."""
        self.pending = []
        try:
            yield
            self.flush()
            pending, self.pending = self.pending, None
            commit_objects(self.ds, pending)
        except BaseException as exc:
            pending, self.pending = self.pending or [], None
            self.buf, self.rows, self.first_at = [], 0, None
            done = [m for m in pending if m.oid in self.ds.catalog.objects]  # committed before a commit failed
            pending = [m for m in pending if m.oid not in self.ds.catalog.objects]
            dropped = sum(drop_fragments(self.ds, m) for m in pending)
            if isinstance(exc, RuntimeFailure):
                what = ("nothing was ingested" if not done else
                        f"only {sum(m.n_rows for m in done):,} rows in {len(done)} object(s) were committed")
                raise RuntimeFailure(f"{exc}; {what} ({len(pending)} sealed object(s) "
                                     f"discarded, {dropped} fragment(s) deleted)") from exc
            raise

    def add(self, batch: dict[str, np.ndarray], stored: bool = False) -> list[ObjectMeta]:
        cols = normalise_batch(self.ds, batch, stored)
        n = len(next(iter(cols.values())))
        if n == 0:
            return []
        self.buf.append(cols)
        self.rows += n
        if self.first_at is None:
            self.first_at = time.monotonic()
        sealed = []
        while self.rows >= self.target_rows:
            sealed.append(self._seal_rows(self.target_rows))
        if self._too_old():
            sealed.append(self._seal_rows(self.rows))
        return sealed

    def _too_old(self) -> bool:
        age = self.ds.schema.seal_seconds
        return bool(age and self.rows and self.first_at is not None and time.monotonic() - self.first_at >= age)

    def tick(self) -> list[ObjectMeta]:
        """Seal a partial object that has waited ``seal_seconds`` (call periodically)."""
        return [self._seal_rows(self.rows)] if self._too_old() else []

    def flush(self) -> list[ObjectMeta]:
        return [self._seal_rows(self.rows)] if self.rows else []

    def _seal_rows(self, n: int) -> ObjectMeta:
        names = self.ds.schema.names
        allcols = {c: np.concatenate([b[c] for b in self.buf]) for c in names}
        take = {c: v[:n] for c, v in allcols.items()}
        rest = {c: v[n:] for c, v in allcols.items()}
        self.rows -= n
        self.buf = [rest] if self.rows else []
        self.first_at = time.monotonic() if self.rows else None
        meta = seal(self.ds, take, commit=self.pending is None)
        if self.pending is not None:
            self.pending.append(meta)
        if self.on_seal:
            self.on_seal(meta)
        return meta


class ProgressBar:
    """A plain stderr progress bar (no dependency); silent when stderr is not a terminal."""

    def __init__(self, total: int, label: str = "ingest", force: bool = False):
        self.total, self.label, self.done = max(1, total), label, 0
        self.enabled = force or sys.stderr.isatty()
        self.t0 = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        frac = min(1.0, self.done / self.total)
        bar = "#" * int(frac * 30)
        rate = self.done / max(1e-9, time.monotonic() - self.t0)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac:6.1%} {self.done:,} rows {rate:,.0f} rows/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
