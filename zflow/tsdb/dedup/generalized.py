"""Generalized deduplication per column, keeping every value addressable.

A value's order-preserving key (:mod:`zflow.tsdb.layout.ordkeys`) splits into a *base* (high
``w - d`` bits) and a *deviation* (low ``d`` bits). Bases are deduplicated into a sorted
per-object dictionary; each row stores its base id (``ceil(log2(#bases))`` bits) and its
deviation (``d`` bits) as two fixed-width bit-packed sub-columns. Because the dictionary is
sorted, base ids preserve order and base ``j`` covers the key range
``[base_j << d, (base_j << d) | (2**d - 1)]``: a predicate accepts or rejects every row of a
base from its id alone, and only rows whose base straddles the predicate need deviations.

The split ``d`` minimises ``rows * (id_bits + d) + #bases * (w - d)`` over all ``d`` at once:
after one sort, adjacent distinct keys share a base for split ``d`` iff their XOR is below
``2**d``, so a histogram of XOR bit lengths gives every ``#bases(d)`` (vectorised, O(n log n)).
``d = w`` is plain storage (one base), so dedup never costs more than raw bit width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

U64 = np.uint64


def bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of each uint64 (0 for 0), vectorised."""
    x = np.asarray(x, dtype=U64)
    out = np.zeros(x.shape, dtype=np.int64)
    v = x.copy()
    for s in (32, 16, 8, 4, 2, 1):
        m = v >= (U64(1) << U64(s))
        out[m] += s
        v[m] >>= U64(s)
    out += (v > 0).astype(np.int64)
    return out


def id_bits(n_bases: int) -> int:
    return int(n_bases - 1).bit_length() if n_bases > 1 else 0


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Unique values of a sorted array (np.unique's hashing path is slow on uint64 here)."""
    if len(a) == 0:
        return a
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


@dataclass
class Split:
    dev_bits: int
    bases: np.ndarray  # sorted unique bases (uint64)
    total_bits: int

    @property
    def base_bits(self) -> int:
        return id_bits(len(self.bases))


def choose_split(keys: np.ndarray, width: int) -> Split:
    """The deviation width minimising total size (sub-columns + dictionary)."""
    n = len(keys)
    s = _sorted_unique(np.sort(np.asarray(keys, dtype=U64)))
    if len(s) <= 1:
        # one distinct value: one base, no deviation bits, no base-id bits
        return Split(0, s.copy() if len(s) else np.zeros(1, dtype=U64), width)
    hb = bit_length(s[1:] ^ s[:-1])  # adjacent keys differ in base iff hb > d
    hist = np.bincount(hb, minlength=width + 2)
    # bases(d) = 1 + #{hb > d}
    greater = hist[::-1].cumsum()[::-1]  # greater[i] = #{hb >= i}
    d = np.arange(width + 1)
    n_bases = 1 + np.append(greater[1:], 0)[: width + 1]
    ibits = np.array([id_bits(int(b)) for b in n_bases])
    total = n * (ibits + d) + n_bases * (width - d)
    best = int(np.argmin(total))
    bases = _sorted_unique(s >> U64(best)) if best < 64 else np.zeros(1, dtype=U64)
    return Split(best, bases, int(total[best]))


def split_keys(keys: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Keys -> (base ids, deviations) as uint64 arrays."""
    k = np.asarray(keys, dtype=U64)
    d = split.dev_bits
    if d >= 64:
        return np.zeros(len(k), dtype=U64), k.copy()
    base = k >> U64(d)
    ids = np.searchsorted(split.bases, base).astype(U64)
    dev = k & ((U64(1) << U64(d)) - U64(1))
    return ids, dev


def join_keys(ids: np.ndarray, dev: np.ndarray, bases: np.ndarray, dev_bits: int) -> np.ndarray:
    if dev_bits >= 64:
        return np.asarray(dev, dtype=U64)
    idx = np.asarray(ids, dtype=np.int64)
    if len(idx) and int(idx.max()) >= len(bases):
        from zflow.errors import RuntimeFailure

        raise RuntimeFailure("corrupted data: a base id lies outside the object's dictionary "
                             "(run `zflow tsdb verify`/`repair`, or query with --verify)")
    return (bases[idx] << U64(dev_bits)) | np.asarray(dev, dtype=U64)


def base_ranges(bases: np.ndarray, dev_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed key range ``[lo, hi]`` covered by each base."""
    if dev_bits >= 64:
        return np.zeros(1, dtype=U64), np.full(1, 0xFFFFFFFFFFFFFFFF, dtype=U64)
    lo = bases << U64(dev_bits)
    return lo, lo | ((U64(1) << U64(dev_bits)) - U64(1))


def classify_bases(bases: np.ndarray, dev_bits: int, ivs: list[tuple[int, int]]) -> np.ndarray:
    """Per base: 1 = every value matches, 0 = none matches, 2 = depends on the deviation."""
    lo, hi = base_ranges(bases, dev_bits)
    full = np.zeros(len(lo), dtype=bool)
    touch = np.zeros(len(lo), dtype=bool)
    for a, b in ivs:
        a_, b_ = U64(a), U64(b)
        full |= (lo >= a_) & (hi <= b_)
        touch |= (lo <= b_) & (hi >= a_)
    out = np.where(full, 1, np.where(touch, 2, 0)).astype(np.int8)
    return out


# ---- trend: a linear row model before dedup, for counters and timestamps ----------------------
# Keys that grow with the row (time, sequence numbers) have wide ranges but small residuals
# around a line. With K = the object's min key, ``key_i = K + floor(i * slope) + rmin + u_i``
# where ``u_i >= 0`` is deduplicated as above. Still addressable (row i's key needs only u_i),
# and a predicate is decided for most rows from metadata alone: row i's key lies in
# ``K + floor(i * slope) + rmin + [0, umax]``, so a time range touches base ids and deviations
# only of the rows near its ends.


@dataclass
class Trend:
    slope: float
    rmin: int
    umax: int

    def to_list(self) -> list:
        return [self.slope, self.rmin, self.umax]

    @classmethod
    def from_list(cls, v: list) -> Trend:
        return cls(float(v[0]), int(v[1]), int(v[2]))

    def line(self, rows: np.ndarray) -> np.ndarray:
        """``floor(i * slope) + rmin`` (int64): the row's lowest possible key offset from K."""
        return np.floor(np.asarray(rows, dtype=np.float64) * self.slope).astype(np.int64) + self.rmin


def fit_trend(keys: np.ndarray, min_key: int, max_key: int) -> tuple[Trend, np.ndarray] | None:
    """(trend, residuals u) or None when keys do not suit a line (range too wide)."""
    n = len(keys)
    if n < 16 or max_key - min_key >= 1 << 62:
        return None
    rel = (np.asarray(keys, dtype=U64) - U64(min_key)).astype(np.int64)
    slope = float(rel[-1] - rel[0]) / (n - 1)
    p = np.floor(np.arange(n, dtype=np.float64) * slope).astype(np.int64)
    r = rel - p
    rmin, rmax = int(r.min()), int(r.max())
    if rmax - rmin >= 1 << 62:
        return None
    return Trend(slope, rmin, rmax - rmin), (r - rmin).astype(U64)


def trend_keys(u: np.ndarray, rows: np.ndarray, trend: Trend, min_key: int) -> np.ndarray:
    rel = trend.line(rows) + np.asarray(u, dtype=U64).astype(np.int64)
    return U64(min_key) + rel.astype(U64)


def trend_states(rows: np.ndarray, trend: Trend, min_key: int, max_key: int,
                 ivs: list[tuple[int, int]], ordered: bool = False) -> np.ndarray:
    """Per row: 1 = the predicate holds whatever u is, 0 = it cannot hold, 2 = depends on u.
    With ``ordered`` the codes are 0 cannot, 1 depends, 2 holds (the query's Kleene order)."""
    rows = np.asarray(rows)
    if trend.slope > 0 and len(rows) > 64 and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
        return _run_states(int(rows[0]), len(rows), trend, max_key - min_key,
                           [(max(a, min_key) - min_key, min(b, max_key) - min_key)
                            for a, b in ivs if not (b < min_key or a > max_key)], ordered)
    if ordered:
        return np.array([0, 2, 1], dtype=np.int8)[trend_states(rows, trend, min_key, max_key, ivs)]
    line = trend.line(rows)
    hi = np.minimum(line + trend.umax, max_key - min_key)
    lo = np.maximum(line, 0, out=line)
    full = np.zeros(len(lo), dtype=bool)
    touch = np.zeros(len(lo), dtype=bool)
    for a, b in ivs:
        if b < min_key or a > max_key:
            continue
        a_, b_ = max(a, min_key) - min_key, min(b, max_key) - min_key
        full |= (lo >= a_) & (hi <= b_)
        touch |= (lo <= b_) & (hi >= a_)
    out = touch.view(np.int8) << 1  # 2 where touched, then 1 where fully inside
    out[full] = 1
    return out


def _run_states(r0: int, n: int, trend: Trend, top: int, ivs: list[tuple[int, int]],
                ordered: bool = False) -> np.ndarray:
    """:func:`trend_states` for the contiguous rows [r0, r0 + n) of a rising line: the line is
    monotone, so "fully inside" and "touching" are row intervals found from the line's
    inverse (:func:`_first_row`), not by evaluating it on every row."""
    end = r0 + n

    def first(target: int) -> int:  # first row (clipped to [r0, end]) with line >= target
        return min(max(_first_row(end, trend, target), r0), end) - r0

    touch, full = [], []
    for a, b in ivs:
        touch.append((first(a - trend.umax), first(b + 1)))  # line + umax >= a and line <= b
        f0 = first(a) if a > 0 else 0  # max(line, 0) >= a
        f1 = n if b >= top else first(b - trend.umax + 1)  # min(line + umax, top) <= b
        full.append((f0, f1))
    out = np.zeros(n, dtype=np.int8)  # row intervals: slice fills, no per-row masks
    for t0, t1 in touch:
        out[t0:t1] = 1 if ordered else 2
    for f0, f1 in full:
        out[f0:f1] = 2 if ordered else 1
    return out


def trend_window(n: int, trend: Trend, min_key: int, max_key: int,
                 ivs: list[tuple[int, int]]) -> tuple[int, int]:
    """Rows ``[r0, r1)`` outside which the predicate cannot hold (from the line alone)."""
    spans = []
    for a, b in ivs:
        if b < min_key or a > max_key:
            continue
        a_, b_ = max(a, min_key) - min_key, min(b, max_key) - min_key
        if trend.slope > 0:
            # first row whose highest key reaches a_, last row whose lowest key is <= b_
            r0 = _first_row(n, trend, a_ - trend.umax)
            r1 = _first_row(n, trend, b_ + 1)
        else:
            line = trend.line(np.arange(n))
            ok = np.nonzero((line <= b_) & (line + trend.umax >= a_))[0]
            r0, r1 = (int(ok[0]), int(ok[-1]) + 1) if len(ok) else (0, 0)
        if r0 < r1:
            spans.append((r0, r1))
    if not spans:
        return 0, 0
    return min(s[0] for s in spans), max(s[1] for s in spans)


def _first_row(n: int, trend: Trend, target: int) -> int:
    """Smallest row i in [0, n] with line(i) >= target (line non-decreasing). Scalar float
    arithmetic here equals :meth:`Trend.line` (both IEEE doubles), without array set-up."""
    guess = int(np.clip(np.floor((target - trend.rmin) / trend.slope), 0, n)) if trend.slope else 0
    slope, rmin = trend.slope, trend.rmin

    def line(i: int) -> int:
        return math.floor(float(i) * slope) + rmin

    lo = max(0, guess - 4)
    while lo > 0 and line(lo) >= target:
        lo = max(0, lo - 64)
    for i in range(lo, min(n, guess + 8)):
        if line(i) >= target:
            return i
    i = min(n, guess + 8)
    while i < n and line(i) < target:
        i += 1
    return i
