"""Query execution: prune, decide from metadata, settle on deviations, then project.

1. Prune objects whose per-column min/max keys cannot satisfy any AND-group of the filter.
2. Phase A: trend columns (timestamps, counters) narrow each object to a row window from
   their line alone; each other predicate classifies its column's dedup bases (all match /
   none / depends) from the catalog's dictionary; base ids are fetched, inside the window,
   only for predicates whose class varies across bases.
3. Phase B: rows still undecided (three-valued AND/OR) fetch the deviations (and, for trend
   columns, base ids) of just the predicates undecided for them.
4. Phase C: fetch only the projected sub-columns of the matching rows (after ``limit``).
Each phase is one multi-range request per fragment touched (:mod:`zflow.tsdb.query.fetch`); the
report separates filter-phase and projection-phase bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zflow.tsdb.catalog.records import ObjectMeta
from zflow.tsdb.dedup import generalized as dedup
from zflow.tsdb.layout import ordkeys
from zflow.tsdb.query import rowstates
from zflow.tsdb.query.fetch import Fetcher
from zflow.tsdb.query.selector import Pred, Query, check_query

if TYPE_CHECKING:
    from zflow.tsdb.dataset import Dataset

Compiled = list[list[tuple[str, list[tuple[int, int]]]]]


@dataclass
class Result:
    columns: dict[str, np.ndarray]
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def to_json(self) -> dict[str, Any]:
        return {"columns": {k: v.tolist() for k, v in self.columns.items()}, "report": self.report}


def effective_where(q: Query, ds: Dataset) -> list[list[Pred]]:
    where = [list(c) for c in q.where]
    if q.time is not None and (tc := ds.schema.time_column) is not None:  # check_query: a time
        extra = []                                                          # range needs a time column
        if q.time[0] is not None:
            extra.append(Pred(tc, ">=", q.time[0]))
        if q.time[1] is not None:
            extra.append(Pred(tc, "<=", q.time[1]))
        where = [c + extra for c in where] if where else [extra]
    return where


def compile_where(where: list[list[Pred]], ds: Dataset) -> Compiled:
    return [[(p.column, ordkeys.interval(ds.schema.column(p.column), p.op, p.value)) for p in conj]
            for conj in where]


def _may_match(meta: ObjectMeta, compiled: Compiled) -> bool:
    if not compiled:
        return True
    for conj in compiled:
        ok = True
        for col, ivs in conj:
            cm = meta.columns[col]
            if not any(a <= cm.max_key and b >= cm.min_key for a, b in ivs):
                ok = False
                break
        if ok:
            return True
    return False


# Per-row states inside the filter are kept *ordered*: false 0 < unknown 1 < true 2, so Kleene
# AND is a minimum and OR a maximum with no conversion per pass. ``_ORD`` maps the dedup/trend
# encoding (0 false, 1 true, 2 unknown) to it (and back: the map is its own inverse).
_ORD = np.array([0, 2, 1], dtype=np.int8)
FALSE, UNKNOWN, TRUE = 0, 1, 2


def _three_valued(states: list[list[np.ndarray]]) -> np.ndarray:
    """Kleene logic over ordered per-row states: AND is a minimum, OR a maximum."""
    res = None
    for conj_states in states:
        conj = conj_states[0].copy()
        for st in conj_states[1:]:
            np.minimum(conj, st, out=conj)
        res = conj if res is None else np.maximum(res, conj, out=res)
    assert res is not None
    return res


def _window(m: ObjectMeta, compiled: Compiled) -> np.ndarray:
    """Rows of ``m`` that may match: the union over AND-groups of their trend windows."""
    lo, hi = m.n_rows, 0
    for conj in compiled:
        r0, r1 = 0, m.n_rows
        for c, ivs in conj:
            cm = m.columns[c]
            if cm.trend is not None:
                a, b = dedup.trend_window(m.n_rows, cm.trend, cm.min_key, cm.max_key, ivs)
                r0, r1 = max(r0, a), min(r1, b)
        if r0 < r1:
            lo, hi = min(lo, r0), max(hi, r1)
    return np.arange(lo, hi) if lo < hi else np.zeros(0, dtype=np.int64)


def _base_states(f: Fetcher, m: ObjectMeta, c: str, win: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Ordered states of the window rows from their base ids (unpack + look-up fused)."""
    return f.lookup(m, f"{c}.base", int(win[0]), len(win), table)


def _undecided(res: np.ndarray) -> np.ndarray | slice | None:
    """Positions of the unknown rows: None when there are none, a slice when they form a run
    (the usual case: then every later step slices instead of gathering)."""
    mask = res == UNKNOWN
    count = int(np.count_nonzero(mask))
    if count == 0:
        return None
    a = int(np.argmax(mask))
    b = len(mask) - int(np.argmax(mask[::-1]))
    return slice(a, b) if b - a == count else np.flatnonzero(mask)


def _positions(picked: np.ndarray, und: np.ndarray | slice, nonzero: bool = True) -> np.ndarray:
    """Window positions of the undecided entries selected by ``picked`` (a mask over the
    undecided rows, or their indices when ``nonzero`` is False)."""
    if nonzero and isinstance(und, slice) and picked.all():
        return np.arange(und.start, und.stop)
    idx = np.flatnonzero(picked) if nonzero else picked
    return idx + und.start if isinstance(und, slice) else und[idx]


def _filter(f: Fetcher, cand: list[ObjectMeta], compiled: Compiled) -> dict[str, np.ndarray]:
    """Matching rows per object (phases A and B)."""
    matches: dict[str, np.ndarray] = {}
    # phase A: decide rows from metadata where possible (trend lines narrow each object to
    # a row window; dedup base classes accept or reject whole bases), then fetch base ids
    # only inside the window and only for predicates whose class varies across bases
    classes: dict[str, list[list[np.ndarray | None]]] = {}
    windows: dict[str, np.ndarray] = {}
    items = []
    for m in cand:
        win = _window(m, compiled)
        windows[m.oid] = win
        if len(win) == 0:
            continue
        cl: list[list[np.ndarray | None]] = []
        need = set()
        for conj in compiled:
            row_cl: list[np.ndarray | None] = []
            for c, ivs in conj:
                cm = m.columns[c]
                if cm.trend is not None:
                    row_cl.append(None)  # decided per row from the trend line
                    continue
                cls = dedup.classify_bases(cm.bases, cm.dev_bits, ivs)
                row_cl.append(_ORD[cls])
                if m.layout.subcolumns[f"{c}.base"].bits and ((cls == 2).any() or cls.min() != cls.max()):
                    need.add(c)
            cl.append(row_cl)
        classes[m.oid] = cl
        items += [(m, f"{c}.base", win) for c in sorted(need)]
    f.fetch(items)
    # phase B: base ids (trend columns) and deviations of the rows still undecided; only the
    # undecided positions (``und``) are carried past this point, never full-window masks
    states: dict[str, list[list[np.ndarray]]] = {}
    results: dict[str, np.ndarray] = {}
    undecided: dict[str, np.ndarray | slice | None] = {}
    items = []
    for m in cand:
        win = windows[m.oid]
        if len(win) == 0:
            continue
        st = []
        for conj, cconj in zip(compiled, classes[m.oid], strict=True):
            row = []
            for (c, ivs), base_cls in zip(conj, cconj, strict=True):
                cm = m.columns[c]
                if cm.trend is not None:  # phase A left base_cls None exactly for these
                    row.append(dedup.trend_states(win, cm.trend, cm.min_key, cm.max_key, ivs, ordered=True))
                elif base_cls is None:
                    raise AssertionError(f"column {c}: no base classes and no trend")
                elif base_cls.min() == base_cls.max():  # one class for every base: no ids needed
                    row.append(np.full(len(win), base_cls[0], dtype=np.int8))
                else:
                    row.append(_base_states(f, m, c, win, base_cls))
            st.append(row)
        states[m.oid] = st
        res = _three_valued(st)
        und = _undecided(res)
        if und is not None:
            need_pos: dict[str, list[np.ndarray]] = {}
            for conj, srow in zip(compiled, st, strict=True):
                for (c, _), s_ in zip(conj, srow, strict=True):
                    need_pos.setdefault(c, []).append(_positions(s_[und] == UNKNOWN, und))
            for c, parts in need_pos.items():
                pos = parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
                if len(pos):
                    rows = win[0] + pos  # windows are row runs: no gather
                    items.append((m, f"{c}.dev", rows))
                    if m.columns[c].trend is not None:
                        items.append((m, f"{c}.base", rows))
        results[m.oid] = res
        undecided[m.oid] = und
    f.fetch(items)
    for m in cand:
        win = windows[m.oid]
        if len(win) == 0:
            matches[m.oid] = win
            continue
        res = results[m.oid]
        und = undecided[m.oid]  # positions inside the window (a slice when they are a run)
        if und is not None:
            sub_states = []
            for conj, srow in zip(compiled, states[m.oid], strict=True):
                sub_row = []
                for (c, ivs), s_ in zip(conj, srow, strict=True):
                    sub = s_[und]
                    cm = m.columns[c]
                    unknown = sub == UNKNOWN
                    if isinstance(und, slice) and cm.trend is None and unknown.all():
                        # every undecided row of a row run: no index arrays at all
                        sub[:] = rowstates.key_states(*f.stream(m, f"{c}.base"), *f.stream(m, f"{c}.dev"),
                                                      range(int(win[0]) + und.start, int(win[0]) + und.stop),
                                                      cm.bases, cm.dev_bits, ivs)
                        sub_row.append(sub)
                        continue
                    pos = np.flatnonzero(unknown)
                    if len(pos):
                        rows = win[0] + _positions(pos, und, nonzero=False)
                        if cm.trend is None:  # unpack, join and compare in one pass
                            sub[pos] = rowstates.key_states(*f.stream(m, f"{c}.base"), *f.stream(m, f"{c}.dev"),
                                                            rows, cm.bases, cm.dev_bits, ivs)
                        else:
                            keys = cm.keys(f.values(m, f"{c}.base", rows), f.values(m, f"{c}.dev", rows), rows)
                            sub[pos] = np.where(ordkeys.in_intervals(keys, ivs), TRUE, FALSE)
                    sub_row.append(sub)
                sub_states.append(sub_row)
            res[und] = _three_valued(sub_states)
        matches[m.oid] = win[0] + np.flatnonzero(res == TRUE)
    return matches

def run(ds: Dataset, q: Query, gap: int | None = None, verify: bool = False,
        checked: bool = True) -> Result:
    check_query(q, ds.schema)
    schema = ds.schema
    where = effective_where(q, ds)
    compiled = compile_where(where, ds)
    out_cols = q.cols or schema.names
    objects = ds.catalog.sorted_objects()
    cand = [m for m in objects if _may_match(m, compiled)]
    f = Fetcher(ds, gap, verify, checked)
    matches: dict[str, np.ndarray] = {}
    if not compiled:
        matches = {m.oid: np.arange(m.n_rows) for m in cand}
    elif q.limit is None:
        matches = _filter(f, cand, compiled)
    else:  # stop filtering objects once the limit is reached (batches of growing size)
        found, i, step = 0, 0, 1
        while i < len(cand) and found < q.limit:
            got = _filter(f, cand[i : i + step], compiled)
            matches.update(got)
            found += sum(len(r) for r in got.values())
            i, step = i + step, step * 2
        cand = cand[:i]
    filter_bytes = f.fetched()
    # limit, then phase C: projection of matching rows
    remaining = q.limit
    selected: list[tuple[ObjectMeta, np.ndarray]] = []
    for m in cand:
        rows = matches[m.oid]
        if remaining is not None:
            rows = rows[:remaining]
            remaining -= len(rows)
        if len(rows):
            selected.append((m, rows))
    items = []
    for m, rows in selected:
        for c in out_cols:
            items += [(m, f"{c}.base", rows), (m, f"{c}.dev", rows)]
    f.fetch(items)
    columns: dict[str, np.ndarray] = {}
    result_bytes = 0.0
    for c in out_cols:
        col = schema.column(c)
        parts = []
        for m, rows in selected:
            cm = m.columns[c]
            keys = cm.keys(f.values(m, f"{c}.base", rows), f.values(m, f"{c}.dev", rows), rows)
            parts.append(ordkeys.logical_from_stored(ordkeys.from_keys(keys, col), col))
            result_bytes += len(rows) * (m.layout.subcolumns[f"{c}.base"].bits + cm.dev_bits) / 8
        columns[c] = np.concatenate(parts) if parts else np.zeros(0, dtype=col.logical_dtype)
    report = {"rows": sum(len(r) for _, r in selected), "objects": len(objects),
              "objects_scanned": len(cand), "result_bytes": round(result_bytes),
              "filter_bytes": filter_bytes, "projection_bytes": f.fetched() - filter_bytes, **f.report()}
    return Result(columns, report)


def run_naive(ds: Dataset, q: Query) -> Result:
    """Baseline plan: fetch and decode whole objects (after min/max pruning), filter in numpy."""
    check_query(q, ds.schema)
    where = effective_where(q, ds)
    compiled = compile_where(where, ds)
    cand = [m for m in ds.catalog.sorted_objects() if _may_match(m, compiled)]
    f = Fetcher(ds, gap=0)
    whole = f.fetch_whole(cand)
    out_cols = q.cols or ds.schema.names
    parts: dict[str, list[np.ndarray]] = {c: [] for c in out_cols}
    remaining = q.limit
    for m in cand:
        data = np.concatenate([whole[(m.oid, i)] for i in range(m.layout.k)])
        keys = decode_object(m, data)
        mask = np.zeros(m.n_rows, dtype=bool) if compiled else np.ones(m.n_rows, dtype=bool)
        for conj in compiled:
            cm = np.ones(m.n_rows, dtype=bool)
            for c, ivs in conj:
                cm &= ordkeys.in_intervals(keys[c], ivs)
            mask |= cm
        rows = np.nonzero(mask)[0]
        if remaining is not None:
            rows = rows[:remaining]
            remaining -= len(rows)
        for c in out_cols:
            col = ds.schema.column(c)
            parts[c].append(ordkeys.logical_from_stored(ordkeys.from_keys(keys[c][rows], col), col))
    columns = {c: (np.concatenate(v) if v else np.zeros(0, ds.schema.column(c).logical_dtype))
               for c, v in parts.items()}
    rep = f.report()
    rep.update(rows=len(next(iter(columns.values()))), objects_scanned=len(cand))
    return Result(columns, rep)


def decode_object(m: ObjectMeta, data: np.ndarray) -> dict[str, np.ndarray]:
    """All column keys of an object from its concatenated data fragments."""
    from zflow.tsdb.layout import bitpack

    out = {}
    rows = np.arange(m.n_rows)
    for c, cm in m.columns.items():
        vals = []
        for kind in ("base", "dev"):
            sc = m.layout.subcolumns[f"{c}.{kind}"]
            if sc.bits == 0:
                vals.append(np.zeros(m.n_rows, dtype=np.uint64))
                continue
            stream = np.zeros(sc.stream_size + 16, dtype=np.uint8)
            for row0, nrows, off in sc.segments:
                s0 = row0 * sc.bits // 8
                n = bitpack.packed_size(nrows, sc.bits)
                stream[s0 : s0 + n] = data[off : off + n]
            vals.append(bitpack.unpack_rows(stream, rows, sc.bits))
        out[c] = cm.keys(vals[0], vals[1], rows)
    return out
