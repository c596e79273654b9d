"""Order-preserving unsigned keys for every column type.

Each stored value becomes a uint64 *key* whose unsigned order equals the value order
(signed ints: flip the sign bit; floats: flip all bits of negatives, the sign bit of
positives). Generalized deduplication, min/max pruning and predicate evaluation all work on
keys, so a comparison ``temperature > 30.1`` is one closed key interval, and a dedup *base*
(the key's high bits) covers a contiguous value range a query can accept or reject whole.
"""

from __future__ import annotations

import math

import numpy as np

from zflow.errors import Problem, UserError
from zflow.tsdb.schema import Column

U64 = np.uint64


def _uint_view(col: Column) -> np.dtype:
    return np.dtype(f"uint{col.bits}")


def stored_from_logical(values: np.ndarray, col: Column) -> np.ndarray:
    """Logical values (floats for scaled columns) -> the storage dtype, checking range."""
    arr = np.asarray(values)
    dt = col.dtype
    if col.scale:
        exact = arr.astype(np.float64) * (10.0**col.scale)
        scaled = np.rint(exact)
        with np.errstate(invalid="ignore"):
            off = np.flatnonzero(np.abs(exact - scaled) > 4 * np.spacing(np.abs(exact)))
        if len(off):  # rounding would change the value: refuse, as a file's reader does
            i = int(off[0])
            raise UserError(Problem(f"column '{col.name}': value {arr[i]!r} at row {i} has more decimals "
                                    f"than scale {col.scale} keeps ({len(off)} such value(s))"))
        info = np.iinfo(dt)
        if scaled.size and (np.nanmin(scaled) < info.min or np.nanmax(scaled) > info.max):
            raise UserError(Problem(f"column '{col.name}': values out of range for {col.type} with scale {col.scale}"))
        if np.isnan(scaled).any():
            raise UserError(Problem(f"column '{col.name}': missing values cannot be stored in {col.type}"))
        return scaled.astype(dt)
    if dt.kind in "iu" and arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise UserError(Problem(f"column '{col.name}': missing values cannot be stored in {col.type}"))
        if arr.size and not np.array_equal(arr, np.rint(arr)):
            raise UserError(Problem(f"column '{col.name}': non-integer values for {col.type} (add a scale?)"))
    if dt.kind in "iu" and arr.size and arr.dtype.kind in "iuf":
        info = np.iinfo(dt)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise UserError(Problem(f"column '{col.name}': values {lo}..{hi} out of range for {col.type}"))
    return arr.astype(dt)


def logical_from_stored(stored: np.ndarray, col: Column) -> np.ndarray:
    if col.scale:
        return stored.astype(np.float64) / (10.0**col.scale)
    return stored


def to_keys(stored: np.ndarray, col: Column) -> np.ndarray:
    """Stored values -> order-preserving uint64 keys."""
    bits = col.bits
    u = np.ascontiguousarray(stored, dtype=col.dtype).view(_uint_view(col)).astype(U64)
    sign = U64(1) << U64(bits - 1)
    if col.type.startswith("i"):
        return u ^ sign
    if col.type.startswith("f"):
        mask = (U64(1) << U64(bits)) - U64(1) if bits < 64 else U64(0xFFFFFFFFFFFFFFFF)
        neg = (u & sign) != 0
        return np.where(neg, (~u) & mask, u | sign)
    return u


def from_keys(keys: np.ndarray, col: Column) -> np.ndarray:
    """Inverse of :func:`to_keys` (returns the storage dtype)."""
    bits = col.bits
    k = np.asarray(keys, dtype=U64)
    sign = U64(1) << U64(bits - 1)
    if col.type.startswith("i"):
        u = k ^ sign
    elif col.type.startswith("f"):
        mask = (U64(1) << U64(bits)) - U64(1) if bits < 64 else U64(0xFFFFFFFFFFFFFFFF)
        pos = (k & sign) != 0
        u = np.where(pos, k ^ sign, (~k) & mask)
    else:
        u = k
    return u.astype(_uint_view(col)).view(col.dtype)


def key_max(col: Column) -> int:
    return (1 << col.bits) - 1


def _key_of(value: float | int, col: Column) -> int:
    arr = np.array([value], dtype=col.dtype)
    return int(to_keys(arr, col)[0])


def interval(col: Column, op: str, value: float) -> list[tuple[int, int]]:
    """Key intervals (closed) of stored values satisfying ``logical <op> value``."""
    kmax = key_max(col)
    if col.type.startswith("f"):
        if math.isnan(value):
            return [(0, kmax)] if op == "!=" else []
        lo_valid, hi_valid = _key_of(-math.inf, col), _key_of(math.inf, col)
        # NumPy 2 semantics: a Python float compared with a float32 column is cast to float32
        # (1e308 becomes inf there, as numpy would compare it).
        with np.errstate(over="ignore"):
            v = float(np.array(value, dtype=col.dtype))
        kl = _key_of(-0.0, col) if v == 0 else _key_of(v, col)
        kh = _key_of(0.0, col) if v == 0 else _key_of(v, col)
        table = {
            "=": [(kl, kh)],
            "!=": [(0, kl - 1), (kh + 1, kmax)],
            "<": [(lo_valid, kl - 1)],
            "<=": [(lo_valid, kh)],
            ">": [(kh + 1, hi_valid)],
            ">=": [(kl, hi_valid)],
        }
        return [(a, b) for a, b in table[op] if a <= b]
    info = np.iinfo(col.dtype)
    t = float(value) * (10 ** (col.scale or 0))
    if math.isnan(t):  # compares false with every value, as in numpy
        return [(0, kmax)] if op == "!=" else []
    if math.isfinite(t) and abs(t - round(t)) <= 4 * float(np.spacing(abs(t))):  # decimal scaling round-off only
        t = float(round(t))
    if op in ("=", "!="):
        if not math.isfinite(t) or t != math.floor(t) or t < info.min or t > info.max:
            return [] if op == "=" else [(0, kmax)]
        k = _key_of(int(t), col)
        return [(k, k)] if op == "=" else [(a, b) for a, b in ((0, k - 1), (k + 1, kmax)) if a <= b]
    if t > info.max or t < info.min:  # beyond the type (1e308, inf): all rows or none
        every = (t > info.max) == (op in ("<", "<="))
        return [(_key_of(info.min, col), _key_of(info.max, col))] if every else []
    if op == "<":
        hi, lo = math.ceil(t) - 1, info.min
    elif op == "<=":
        hi, lo = math.floor(t), info.min
    elif op == ">":
        lo, hi = math.floor(t) + 1, info.max
    elif op == ">=":
        lo, hi = math.ceil(t), info.max
    else:
        raise ValueError(op)
    lo, hi = max(lo, info.min), min(hi, info.max)
    if lo > hi:
        return []
    return [(_key_of(lo, col), _key_of(hi, col))]


def in_intervals(keys: np.ndarray, ivs: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(keys.shape, dtype=bool)
    for lo, hi in ivs:
        out |= (keys >= U64(lo)) & (keys <= U64(hi))
    return out
