"""Region kernels for GF(2^8): multiply-accumulate whole fragments, many bytes per step.

Why this shape: a byte-at-a-time table lookup (``MUL[c][x]``) cannot be vectorised by a
compiler (there is no byte gather), so it tops out near one byte per cycle per coefficient.
Instead each 64-bit word is treated as 8 packed field elements and multiplied by the constant
``c`` as ``c*x = XOR over the set bits b of c of (2^b * x)``. Doubling (``xtime``) all 8 bytes of
a word at once is a handful of shifts/ands/xors, and the powers ``x, 2x, ... 128x`` are
computed once per source word and shared by every output row, so the inner loops are
straight-line bitwise code over uint64 arrays that LLVM turns into AVX2/AVX-512. Work is done
in cache-sized blocks so the powers stay in L1.

On CPUs with GFNI (x86 Ice Lake and later, Zen 4) a faster path multiplies 32 bytes per
instruction with ``vgf2p8affineqb`` (:mod:`zflow.tsdb._gfni`). numba is imported lazily
(``cache=True``); without it the numpy fallback uses the 64 KiB product table, which is correct
but an order of magnitude slower. ``ZFLOW_GF_KERNEL=gfni|numba|numpy`` forces a backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from zflow.tsdb.gf256 import MUL

BLOCK_WORDS = 512  # 4 KiB of each source row per block: 8 powers x 4 KiB + outputs stay in L1/L2
_LO7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HI1 = np.uint64(0x8080808080808080)
_RED = np.uint64(0x1D1D1D1D1D1D1D1D)

GFNI_BLOCK_VECS = 64  # 2 KiB of each source per block: all k stay in L1 (measured on Rocket Lake)

_kernels: Any = None  # the numba module namespace once compiled, False when numba is absent
_gfni: Any = None  # the GFNI module when usable, False otherwise


def _forced() -> str:
    return os.environ.get("ZFLOW_GF_KERNEL", "").strip().lower()


def _numba_kernels() -> Any:
    """Compile (or load from numba's cache) the kernels on first use; False without numba."""
    global _kernels
    if _kernels is not None:
        return _kernels
    if _forced() == "numpy":
        _kernels = False
        return _kernels
    try:
        from zflow.tsdb import _gfnumba
    except ImportError:
        _kernels = False
    else:
        _kernels = _gfnumba
    return _kernels


def _gfni_kernels() -> Any:
    global _gfni
    if _gfni is not None:
        return _gfni
    _gfni = False
    if _forced() in ("", "gfni") and _numba_kernels():
        try:
            from zflow.tsdb import _gfni as mod
        except ImportError:
            pass
        else:
            if mod.available():
                _gfni = mod
    return _gfni


def backend() -> str:
    """Which implementation the region ops use right now: ``gfni``, ``numba`` or ``numpy``."""
    if _gfni_kernels():
        return "gfni"
    return "numba" if _numba_kernels() else "numpy"


def coef_masks(coefs: np.ndarray) -> np.ndarray:
    """(r, k) coefficients -> (r, k, 8) uint64 masks: all ones where bit b of the coefficient is set."""
    c = np.asarray(coefs, dtype=np.uint8)
    bits = (c[..., None] >> np.arange(8, dtype=np.uint8)) & 1
    return (bits.astype(np.uint64) * np.uint64(0xFFFFFFFFFFFFFFFF)).astype(np.uint64)


def _rows_as_words(src: np.ndarray | Sequence[np.ndarray], length: int) -> np.ndarray:
    """A (k, W) uint64 view of the sources (zero-copy when they already form one aligned block).

    The words cover ``length`` rounded up to 8 bytes; a tail is zero padded in a copy.
    """
    if isinstance(src, np.ndarray) and src.ndim == 2:
        arr = src
        if arr.dtype == np.uint8 and arr.flags.c_contiguous and length % 8 == 0 and arr.shape[1] == length:
            return arr.view(np.uint64)
        rows: Sequence[np.ndarray] = list(arr)
    else:
        rows = list(src)
    words = -(-length // 8)
    out = np.zeros((len(rows), words * 8), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i, :length] = np.frombuffer(row, dtype=np.uint8) if not isinstance(row, np.ndarray) else row
    return out.view(np.uint64)


def matmul_region(coefs: np.ndarray, src: np.ndarray | Sequence[Any],
                  out: Sequence[np.ndarray] | None = None) -> np.ndarray | Sequence[np.ndarray]:
    """``coefs (r, k) x src (k rows of L bytes) -> (r, L)`` uint8 over GF(2^8).

    ``out`` (r writable uint8 rows of L bytes, e.g. rows of a bigger array) receives the result
    in place when given - the GFNI path then writes straight into it, no copy - and is returned.
    """
    if out is not None:
        if len(out) != len(coefs):
            raise ValueError(f"{len(coefs)} output rows expected, got {len(out)}")
        gfni = _gfni_kernels()
        if any(np.shape(o) != (_length(src),) for o in out):
            raise ValueError("output rows must be as long as the source regions")
        if gfni and all(isinstance(o, np.ndarray) and o.ndim == 1 and o.flags.c_contiguous
                        and o.flags.writeable and o.dtype == np.uint8 for o in out):
            return _matmul_gfni(gfni, np.asarray(coefs, dtype=np.uint8), _as_rows(src), _length(src),
                                out=out)
        res = matmul_region(coefs, src)
        for o, row in zip(out, res, strict=True):
            o[...] = row
        return out
    coefs = np.asarray(coefs, dtype=np.uint8)
    r, k = coefs.shape
    rows = _as_rows(src)
    if len(rows) != k:
        raise ValueError(f"{k} coefficients per row but {len(rows)} source regions")
    length = _length(rows)
    if length == 0:
        return np.zeros((r, 0), dtype=np.uint8)
    gfni = _gfni_kernels()
    if gfni:
        return _matmul_gfni(gfni, coefs, rows, length)
    kern = _numba_kernels()
    if not kern:
        return _matmul_numpy(coefs, rows, length)
    words = _rows_as_words(rows, length)
    acc = np.zeros((r, words.shape[1] * 8), dtype=np.uint8)
    kern.matmul64(coef_masks(coefs), words, acc.view(np.uint64), BLOCK_WORDS)
    return acc[:, :length] if acc.shape[1] != length else acc


def _as_rows(src: Any) -> Any:
    if isinstance(src, np.ndarray) and src.ndim == 2:
        return src
    return [x if isinstance(x, np.ndarray) else np.frombuffer(x, dtype=np.uint8) for x in src]


def _length(rows: Any) -> int:
    if isinstance(rows, np.ndarray):
        return int(rows.shape[1])
    lengths = {int(x.shape[0]) for x in _as_rows(rows)}
    if len(lengths) > 1:
        raise ValueError("source regions have different lengths")
    return lengths.pop() if lengths else 0


def _matmul_gfni(gfni: Any, coefs: np.ndarray, rows: Any, length: int,
                 out: Any = None) -> Any:
    r, k = coefs.shape
    if len(rows) != k:
        raise ValueError(f"{k} coefficients per row but {len(rows)} source regions")
    srcs = [np.ascontiguousarray(x, dtype=np.uint8) for x in rows]  # views when already contiguous
    if out is None:
        out = np.empty((r, length), dtype=np.uint8)
    nvec = length // gfni.VEC
    if nvec:
        addrs = np.array([x.ctypes.data for x in srcs], dtype=np.int64)
        out_addrs = np.array([o.ctypes.data for o in out], dtype=np.int64)
        gfni.matmul_gfni(gfni.affine_matrices(coefs), addrs, out_addrs, nvec, GFNI_BLOCK_VECS)
    done = nvec * gfni.VEC
    if done < length:
        tail = _matmul_numpy(coefs, [x[done:] for x in srcs], length - done)
        for o, t in zip(out, tail, strict=True):
            o[done:] = t
    return out


def _matmul_numpy(coefs: np.ndarray, rows: Any, length: int) -> np.ndarray:
    r, k = coefs.shape
    out = np.zeros((r, length), dtype=np.uint8)
    for i in range(r):
        for j in range(k):
            c = int(coefs[i, j])
            if c == 0:
                continue
            if c == 1:
                out[i] ^= rows[j]
            else:
                out[i] ^= MUL[c][rows[j]]
    return out


def mul_region(coef: int, src: np.ndarray) -> np.ndarray:
    """``coef * src`` for any-shaped uint8 array."""
    flat = np.ascontiguousarray(src, dtype=np.uint8).reshape(-1)
    return matmul_region(np.array([[coef]], dtype=np.uint8), flat[None, :])[0].reshape(np.shape(src))


def addmul_region(dst: np.ndarray, coef: int, src: np.ndarray) -> None:
    """``dst ^= coef * src`` in place."""
    np.bitwise_xor(dst, mul_region(coef, src), out=dst)
