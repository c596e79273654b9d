"""``window``: tumbling or sliding windows, by count or by event time, per key, with aggregates.

Configuration:
    fields (list[str], required): numeric fields to aggregate (missing values are ignored).
    aggregates (list, default [mean, min, max]): any of count, mean, min, max, sum, std
        (population), first, last; output fields are ``<field>_<aggregate>``.
    by ("count" | "time", default "count").
    size (number > 0, required): rows per window (count) or a span of ``time_field`` units (time).
    slide (number > 0, default = size): a smaller slide gives overlapping (sliding) windows.
    key (str | list[str], optional): separate windows per key value (e.g. ``moteid``).
    time_field (str): event time of a record — required with ``by: time``; numbers, or
        strings read with ``time_format`` (strptime) / ISO 8601. Windows are aligned on
        multiples of ``slide``: [start, start + size).
    lateness (number >= 0, default 0): a time window closes once a record of its key is
        ``lateness`` past its end; later records for it are counted as late and dropped.
    partial (bool, default true): when the input ends, emit the windows still open (marked
        ``partial: true``).

Every output record has the key field(s), ``start``, ``end`` (window bounds; for count
windows the first and last ``time_field`` values, or row numbers), ``count`` and the
aggregates. Inputs may be rows or column batches (dicts of numpy arrays with ``batch``
metadata, as the replays send them; see :mod:`operators._tables`).

Ports: input ``in``, output ``out``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from operators._config import parse_config
from operators._tables import is_batch, metadata_of, parse_time, rows
from operators.configs import WindowConfig
from zflow.runtime.api import Context, Operator

_NAN = float("nan")
_REDUCE = {"mean": np.mean, "min": np.min, "max": np.max, "sum": np.sum, "std": np.std}


def aggregate(values: dict[str, list[float]], fields: list[str], aggs: list[str]) -> dict[str, Any]:
    """Aggregates of each field's values (NaN = missing, ignored); all-missing gives None."""
    table = np.asarray([values[f] for f in fields], dtype=np.float64)  # fields x rows
    if table.shape[1] and not np.isnan(table).any():  # the common case: one reduction per aggregate
        columns = {agg: _reduce_rows(table, agg) for agg in aggs}
        return {f"{f}_{agg}": columns[agg][i] for i, f in enumerate(fields) for agg in aggs}
    out: dict[str, Any] = {}
    for f in fields:
        arr = np.asarray(values[f], dtype=np.float64)
        present = arr[~np.isnan(arr)]  # compact once: plain reductions beat the nan* ones
        for agg in aggs:
            name = f"{f}_{agg}"
            if agg == "count":
                out[name] = len(present)
            elif not len(present):
                out[name] = None
            elif agg == "first":
                out[name] = float(present[0])
            elif agg == "last":
                out[name] = float(present[-1])
            else:
                out[name] = float(_REDUCE[agg](present))
    return out


def _reduce_rows(table: np.ndarray, agg: str) -> list[Any]:
    if agg == "count":
        return [table.shape[1]] * table.shape[0]
    if agg == "first":
        return table[:, 0].tolist()
    if agg == "last":
        return table[:, -1].tolist()
    return _REDUCE[agg](table, axis=1).tolist()


class _Buffer:
    """The rows of one open window, stored per field."""

    __slots__ = ("count", "first", "last", "values")

    def __init__(self, fields: list[str]):
        self.values: dict[str, list[float]] = {f: [] for f in fields}
        self.count = 0
        self.first: Any = None
        self.last: Any = None

    def add(self, row: dict[str, Any], fields: list[str], stamp: Any) -> None:
        for f in fields:
            v = row.get(f)
            self.values[f].append(v if isinstance(v, int | float) and not isinstance(v, bool) else _NAN)
        if self.count == 0:
            self.first = stamp
        self.last = stamp
        self.count += 1


class Window(Operator):
    inputs = ("in",)
    outputs = ("out",)

    def setup(self, ctx: Context) -> None:
        cfg = parse_config(WindowConfig, ctx, "window")
        self.cfg = cfg
        self.keys = [cfg.key] if isinstance(cfg.key, str) else list(cfg.key or [])
        self.slide = cfg.slide or cfg.size
        self.needed = list(dict.fromkeys([*self.keys, *cfg.fields, *([cfg.time_field] if cfg.time_field else [])]))
        # per key: count windows -> (deque of (row, stamp), rows seen, rows not yet in a window)
        self.counts: dict[Any, list[Any]] = {}
        # per key: time windows -> ({start: _Buffer}, watermark)
        self.times: dict[Any, list[Any]] = {}
        self.late = 0
        self.emitted = 0

    # -- input ------------------------------------------------------------------------------------
    def on_input(self, port: str, value: Any, ctx: Context) -> None:
        meta = metadata_of(ctx)
        if is_batch(value, meta):  # only the columns a window reads become row dicts
            value = {c: value[c] for c in self.needed if c in value} or value
        for row in rows(value, meta):
            if not isinstance(row, dict):
                raise TypeError(f"window {ctx.node!r} expects records (dicts), got {type(row).__name__}")
            key = tuple(row.get(k) for k in self.keys)
            if self.cfg.by == "count":
                self._add_count(key, row, ctx)
            else:
                self._add_time(key, row, ctx)

    def _stamp(self, row: dict[str, Any]) -> Any:
        tf = self.cfg.time_field
        return None if tf is None else row.get(tf)

    def _add_count(self, key: tuple[Any, ...], row: dict[str, Any], ctx: Context) -> None:
        state = self.counts.get(key)
        if state is None:
            state = self.counts[key] = [deque(), 0, 0]
        buf: deque[Any] = state[0]
        buf.append((row, self._stamp(row)))
        state[1] += 1
        state[2] += 1
        size, slide = int(self.cfg.size), int(self.slide)
        if len(buf) == size:
            start, end, window = self._count_window(state)
            self._emit(key, start, end, window, ctx, partial=False)
            for _ in range(slide):
                buf.popleft()
            state[2] = 0  # every row left in the buffer was in the window just emitted

    def _count_window(self, state: list[Any]) -> tuple[Any, Any, _Buffer]:
        """The buffered rows of a count window as (start, end, buffer)."""
        rows_: deque[Any] = state[0]
        window = _Buffer(self.cfg.fields)
        for row, stamp in rows_:
            window.add(row, self.cfg.fields, stamp)
        first_row = state[1] - len(rows_)
        if self.cfg.time_field:
            return window.first, window.last, window
        return first_row, first_row + len(rows_), window

    def _add_time(self, key: tuple[Any, ...], row: dict[str, Any], ctx: Context) -> None:
        raw = self._stamp(row)
        if raw is None:
            self.late += 1  # no event time: cannot be placed
            return
        t = parse_time(raw, self.cfg.time_format)
        state = self.times.get(key)
        if state is None:
            state = self.times[key] = [{}, -math.inf]
        open_windows: dict[float, _Buffer] = state[0]
        size, slide, lateness = self.cfg.size, self.slide, self.cfg.lateness
        closed_before = state[1] - lateness  # windows ending at or before this are closed
        first = math.floor((t - size) / slide) + 1
        last = math.floor(t / slide)
        placed = False
        for k in range(first, last + 1):
            start = k * slide
            if start + size <= closed_before:
                continue
            buf = open_windows.get(start)
            if buf is None:
                buf = open_windows[start] = _Buffer(self.cfg.fields)
            buf.add(row, self.cfg.fields, t)
            placed = True
        if not placed:
            self.late += 1
            return
        if t > state[1]:
            state[1] = t
            horizon = t - lateness
            for start in sorted(s for s in open_windows if s + size <= horizon):
                self._emit(key, start, start + size, open_windows.pop(start), ctx, partial=False)

    # -- output -----------------------------------------------------------------------------------
    def _emit(self, key: tuple[Any, ...], start: Any, end: Any, buf: _Buffer, ctx: Context, partial: bool) -> None:
        record: dict[str, Any] = dict(zip(self.keys, key, strict=True))
        record.update(start=_plain(start), end=_plain(end), count=buf.count)
        record.update(aggregate(buf.values, self.cfg.fields, self.cfg.aggregates))
        if partial:
            record["partial"] = True
        self.emitted += 1
        ctx.put(ctx.outputs[0] if ctx.outputs else "out", record)

    def on_end(self, ctx: Context) -> None:
        if self.cfg.partial:
            pending: list[tuple[Any, Any, Any, _Buffer]] = []
            for key, state in self.counts.items():
                if state[2] > 0:  # rows that no emitted window covered yet
                    start, end, buf = self._count_window(state)
                    pending.append((end, key, start, buf))
            for key, state in self.times.items():
                for start, buf in state[0].items():
                    pending.append((start + self.cfg.size, key, start, buf))
            pending.sort(key=lambda p: (_sortable((p[0],)), _sortable(p[1])))
            for end, key, start, buf in pending:
                self._emit(key, start, end, buf, ctx, partial=True)
        if self.late:
            ctx.log.warning("%s: %d late or untimed records dropped", ctx.node, self.late)
        self.counts.clear()
        self.times.clear()


def _plain(value: Any) -> Any:
    """Window bounds as ints when they are whole numbers (epochs, row numbers)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sortable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0, v, "") if isinstance(v, int | float) else (1, 0, str(v)) for v in key)
