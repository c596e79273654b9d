"""Region kernels for GF(2^8): multiply-accumulate whole fragments, many bytes per step.

Why this shape: a byte-at-a-time table lookup (``MUL[c][x]``) cannot be vectorised by a
compiler (there is no byte gather), so it tops out near one byte per cycle per coefficient.
Instead each 64-bit word is treated as 8 packed field elements and multiplied by the constant
``c`` as ``c*x = XOR over the set bits b of c of (2^b * x)``. Doubling (``xtime``) all 8 bytes of
a word at once is a handful of shifts/ands/xors, and the powers ``x, 2x, ... 128x`` are
computed once per source word and shared by every output row, so the inner loops are
straight-line bitwise code over uint64 arrays that LLVM turns into AVX2/AVX-512. Work is done
in cache-sized blocks so the powers stay in L1.

On x86 a faster path multiplies 32 bytes per instruction or two (:mod:`zflow.tsdb.coding._kernels_simd`):
``vgf2p8affineqb`` where the CPU has GFNI (Ice Lake and later, Zen 4), ``vpshufb`` split tables
where it has AVX2. numba is imported lazily (``cache=True``); without it the numpy fallback uses
the 64 KiB product table, which is correct but an order of magnitude slower.
``ZFLOW_GF_KERNEL=gfni|avx2|numba|numpy`` forces a backend; :func:`forced` does so in-process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from zflow import settings
from zflow.tsdb.coding.gf256 import MUL

BLOCK_WORDS = 512  # 4 KiB of each source row per block: 8 powers x 4 KiB + outputs stay in L1/L2

SIMD_BLOCK_VECS = 64  # 2 KiB of each source per block: all k stay in L1 (measured on Rocket Lake)
BACKENDS = ("gfni", "avx2", "numba", "numpy")
MAX_SIMD_SOURCES = 256  # the SIMD kernels keep per-source constants in a fixed stack area

_kernels: Any = None  # the numba module namespace once compiled, False when numba is absent
_simd: Any = None  # (kind, kernel function) of the x86 SIMD path in use, False when none


def _forced() -> str:
    return settings.gf_kernel()


def _numba_kernels() -> Any:
    """Compile (or load from numba's cache) the kernels on first use; False without numba."""
    global _kernels
    if _kernels is not None:
        return _kernels
    if _forced() == "numpy":
        _kernels = False
        return _kernels
    try:
        from zflow.tsdb.coding import _kernels_numba as _gfnumba
    except ImportError:
        _kernels = False
    else:
        _kernels = _gfnumba
    return _kernels


def _simd_kernel(kinds: tuple[str, ...] = ("gfni", "avx2")) -> Any:
    """The best x86 SIMD kernel among ``kinds`` this CPU runs, as (kind, function), or False."""
    if not _numba_kernels():
        return False
    try:
        from zflow.tsdb.coding import _kernels_simd as mod
    except ImportError:  # pragma: no cover - numba without llvmlite's IR builder
        return False
    for kind in kinds:
        if mod.available(kind):
            return kind, mod.KERNELS[kind]
    return False


def _simd_state() -> Any:
    global _simd
    if _simd is None:
        forced = _forced()
        _simd = _simd_kernel((forced,) if forced in ("gfni", "avx2") else
                             () if forced in ("numba", "numpy") else ("gfni", "avx2"))
    return _simd


def backend() -> str:
    """Which implementation the region ops use right now: ``gfni``, ``avx2``, ``numba`` or ``numpy``."""
    simd = _simd_state()
    if simd:
        return str(simd[0])
    return "numba" if _numba_kernels() else "numpy"


def available_backends() -> list[str]:
    """Backends this machine can run (for tests and benchmarks)."""
    out = [k for k in ("gfni", "avx2") if _simd_kernel((k,))]
    return out + (["numba"] if _numba_kernels() else []) + ["numpy"]


@contextlib.contextmanager
def forced(name: str) -> Iterator[None]:
    """Run the region ops on backend ``name`` inside the block (tests, benchmarks)."""
    global _simd, _kernels
    if name not in available_backends():
        raise ValueError(f"GF kernel backend {name!r} is not available here: {available_backends()}")
    saved = (_simd_state(), _numba_kernels())
    try:
        _simd = _simd_kernel((name,)) if name in ("gfni", "avx2") else False
        if name == "numpy":
            _kernels = False
        yield
    finally:
        _simd, _kernels = saved


def coef_masks(coefs: np.ndarray) -> np.ndarray:
    """(r, k) coefficients -> (r, k, 8) uint64 masks: all ones where bit b of the coefficient is set."""
    c = np.asarray(coefs, dtype=np.uint8)
    bits = (c[..., None] >> np.arange(8, dtype=np.uint8)) & 1
    return (bits.astype(np.uint64) * np.uint64(0xFFFFFFFFFFFFFFFF)).astype(np.uint64)


def matmul_region(coefs: np.ndarray, src: np.ndarray | Sequence[Any],
                  out: Sequence[np.ndarray] | None = None) -> np.ndarray | Sequence[np.ndarray]:
    """``coefs (r, k) x src (k rows of L bytes) -> (r, L)`` uint8 over GF(2^8).

    ``out`` (r writable uint8 rows of L bytes, e.g. rows of a bigger array) receives the result
    in place when given - the GFNI path then writes straight into it, no copy - and is returned.
    """
    if out is not None:
        if len(out) != len(coefs):
            raise ValueError(f"{len(coefs)} output rows expected, got {len(out)}")
        coefs = np.asarray(coefs, dtype=np.uint8)
        rows = _as_rows(src)
        if len(rows) != coefs.shape[1]:
            raise ValueError(f"{coefs.shape[1]} coefficients per row but {len(rows)} source regions")
        length = _length(rows)
        if any(np.shape(o) != (length,) for o in out):
            raise ValueError("output rows must be as long as the source regions")
        direct = all(isinstance(o, np.ndarray) and o.ndim == 1 and o.flags.c_contiguous
                     and o.flags.writeable and o.dtype == np.uint8 for o in out)
        simd = _simd_state()
        if direct and simd and coefs.shape[1] <= MAX_SIMD_SOURCES:
            return _matmul_simd(simd, coefs, rows, length, out=out)
        if direct and _numba_kernels() and all(o.ctypes.data % 8 == 0 for o in out):
            return _matmul_words(_numba_kernels(), coefs, rows, length, out=out)
        res = matmul_region(coefs, rows)
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
    simd = _simd_state()
    if simd and k <= MAX_SIMD_SOURCES:
        return _matmul_simd(simd, coefs, rows, length)
    kern = _numba_kernels()
    if not kern:
        return _matmul_numpy(coefs, rows, length)
    return _matmul_words(kern, coefs, rows, length)


def _as_rows(src: Any) -> Any:
    if isinstance(src, np.ndarray) and src.ndim == 2:
        return src
    return [x if isinstance(x, np.ndarray) else np.frombuffer(x, dtype=np.uint8) for x in src]


def _length(rows: Any) -> int:
    """Common length of the rows from :func:`_as_rows`."""
    if isinstance(rows, np.ndarray):
        return int(rows.shape[1])
    lengths = {int(x.shape[0]) for x in rows}
    if len(lengths) > 1:
        raise ValueError("source regions have different lengths")
    return lengths.pop() if lengths else 0


def _matmul_simd(simd: Any, coefs: np.ndarray, rows: Any, length: int, out: Any = None) -> Any:
    from zflow.tsdb.coding._kernels_simd import VEC, constants

    kind, kernel = simd
    r, k = coefs.shape
    if len(rows) != k:
        raise ValueError(f"{k} coefficients per row but {len(rows)} source regions")
    srcs = [np.ascontiguousarray(x, dtype=np.uint8) for x in rows]  # views when already contiguous
    if out is None:
        out = np.empty((r, length), dtype=np.uint8)
    nvec = length // VEC
    if nvec:
        addrs = np.array([x.ctypes.data for x in srcs], dtype=np.int64)
        out_addrs = np.array([o.ctypes.data for o in out], dtype=np.int64)
        kernel(constants(kind, coefs), addrs, out_addrs, nvec, SIMD_BLOCK_VECS)
    done = nvec * VEC
    if done < length:
        tail = _matmul_numpy(coefs, [x[done:] for x in srcs], length - done)
        for o, t in zip(out, tail, strict=True):
            o[done:] = t
    return out


def _matmul_words(kern: Any, coefs: np.ndarray, rows: Any, length: int, out: Any = None) -> Any:
    """The portable numba kernel over 8-byte words; rows not 8-byte aligned are copied first."""
    r = coefs.shape[0]
    srcs = [x if x.ctypes.data % 8 == 0 else x.copy()  # numpy allocations are 16-byte aligned
            for x in (np.ascontiguousarray(y, dtype=np.uint8) for y in rows)]
    if out is None:
        out = np.empty((r, length), dtype=np.uint8) if length % 8 == 0 else \
            np.empty((r, length + 8 - length % 8), dtype=np.uint8)[:, :length]
    nwords = length // 8
    if nwords:
        addrs = np.array([x.ctypes.data for x in srcs], dtype=np.int64)
        out_addrs = np.array([o.ctypes.data for o in out], dtype=np.int64)
        kern.matmul64(coef_masks(coefs), addrs, out_addrs, nwords, BLOCK_WORDS)
    done = nwords * 8
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
