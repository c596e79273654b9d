"""Fused per-row predicate evaluation for deduplicated columns.

Rows left undecided by metadata need their keys: unpack the base id and the deviation,
join them through the base dictionary, test the key against the predicate's intervals. In
numpy that is five full-length temporaries per column; the numba kernel does it in one pass
per row and writes only the ordered state (0 false, 2 true; see :mod:`zflow.tsdb.query.planner`).
:func:`key_states_numpy` is the reference (and the fallback without numba).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from zflow.tsdb.dedup import generalized as dedup
from zflow.tsdb.layout import bitpack, ordkeys

U64 = np.uint64
FALSE, TRUE = 0, 2
# (states, lookup, run_in_range) of :mod:`._rowstates_numba`
Kernels = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]
_KERNEL: Kernels | Literal[False] | None = None


def _kernel() -> Kernels | Literal[False]:
    """(states, lookup, run_in_range) compiled kernels, or False without numba."""
    global _KERNEL
    if _KERNEL is None:
        try:
            from zflow.tsdb.query import _rowstates_numba as _rownumba
        except ImportError:
            _KERNEL = False
        else:
            _KERNEL = (_rownumba.states, _rownumba.lookup, _rownumba.run_in_range)
    return _KERNEL


def key_states_numpy(id_buf: np.ndarray, id_bits: int, dev_buf: np.ndarray, dev_bits: int,
                     rows: np.ndarray, bases: np.ndarray, shift: int,
                     ivs: list[tuple[int, int]]) -> np.ndarray:
    """Reference: ordered state (0/2) of each row's key against the closed intervals ``ivs``."""
    ids = bitpack.unpack_rows(id_buf, rows, id_bits)
    keys = dedup.join_keys(ids, bitpack.unpack_rows(dev_buf, rows, dev_bits), bases, shift)
    return np.where(ordkeys.in_intervals(keys, ivs), TRUE, FALSE).astype(np.int8)


def key_states(id_buf: np.ndarray, id_bits: int, dev_buf: np.ndarray, dev_bits: int,
               rows: np.ndarray | range, bases: np.ndarray, shift: int,
               ivs: list[tuple[int, int]]) -> np.ndarray:
    """:func:`key_states_numpy` in one compiled pass (``rows`` ascending, or a ``range`` for a
    run; buffers padded >= 9 bytes past the last row, as :class:`zflow.tsdb.query.fetch.Fetcher`
    keeps them)."""
    kernel = _kernel() if len(rows) > 256 else False
    if isinstance(rows, range):  # a row run given by its bounds (step 1)
        run, r0, last = True, rows.start, rows.stop - 1
    else:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        r0, last = (int(rows[0]), int(rows.max())) if len(rows) else (0, -1)
        run = last - r0 + 1 == len(rows)
    if not kernel:
        if isinstance(rows, range):
            rows = np.arange(rows.start, rows.stop)
        return key_states_numpy(id_buf, id_bits, dev_buf, dev_bits, rows, bases, shift, ivs)
    if (shift >= 64 or id_bits == 0) and run and len(dev_buf) >= (last + 1) * dev_bits // 8 + 9:
        # one base and a row run (ascending rows): compare the deviations themselves
        base = 0 if shift >= 64 else int(bases[0]) << shift
        dmax = (1 << dev_bits) - 1
        out = np.zeros(len(rows), dtype=np.int8)
        for a, b in ivs:
            lo, hi = max(a - base, 0), min(b - base, dmax)
            if lo <= hi:
                part = np.empty(len(rows), dtype=np.int8)
                kernel[2](dev_buf, r0, dev_bits, U64(lo), U64(hi), part)
                np.maximum(out, part, out=out)
        return out
    if isinstance(rows, range):
        rows = np.arange(rows.start, rows.stop)
    for buf, bits in ((id_buf, id_bits), (dev_buf, dev_bits)):
        if len(buf) < (last + 1) * bits // 8 + 9:
            return key_states_numpy(id_buf, id_bits, dev_buf, dev_bits, rows, bases, shift, ivs)
    los = np.array([a for a, _ in ivs], dtype=U64)
    his = np.array([b for _, b in ivs], dtype=U64)
    out = np.empty(len(rows), dtype=np.int8)
    bad = kernel[0](id_buf, id_bits, dev_buf, dev_bits, rows, np.ascontiguousarray(bases, dtype=U64),
                    shift, los, his, out)
    if bad:
        raise _corrupt()
    return out


def _corrupt() -> Exception:
    from zflow.errors import RuntimeFailure

    return RuntimeFailure("corrupted data: a base id lies outside the object's dictionary "
                          "(run `zflow tsdb verify`/`repair`, or query with --verify)")


def lookup_run(buf: np.ndarray, r0: int, n: int, bits: int, table: np.ndarray) -> np.ndarray:
    """``table[value]`` of the rows ``[r0, r0 + n)`` of a packed stream in one pass (for the
    per-base class of a predicate: no intermediate id array)."""
    kernel = _kernel() if n > 256 else False
    if not kernel or len(buf) < (r0 + n) * bits // 8 + 9:
        ids = bitpack.unpack_rows(buf, np.arange(r0, r0 + n), bits)
        if n and int(ids.max()) >= len(table):
            raise _corrupt()
        return table[ids.astype(np.int64)]
    out = np.empty(n, dtype=table.dtype)
    if kernel[1](buf, r0, bits, np.ascontiguousarray(table), out):
        raise _corrupt()
    return out
