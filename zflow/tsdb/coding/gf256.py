"""Arithmetic in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1 (0x11D), scalar and over regions.

The field is the one ISA-L, Jerasure and most RLNC literature use, so coefficients written by
zflow mean the same thing to other tools. Scalars go through log/exp tables; regions (whole
fragments) go through :mod:`zflow.tsdb.coding.kernels`, which multiplies many bytes per step with
numba when it is installed and falls back to numpy table lookups when it is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

POLY = 0x11D
GENERATOR = 2


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.uint8)
    log = np.zeros(256, dtype=np.int32)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= POLY
    exp[255:510] = exp[0:255]
    exp[510:] = exp[0:2]
    a = np.arange(256)
    la = log[a]
    mul = exp[(la[:, None] + la[None, :]) % 255].astype(np.uint8)
    mul[0, :] = 0
    mul[:, 0] = 0
    inv = np.zeros(256, dtype=np.uint8)
    inv[1:] = exp[(255 - log[1:]) % 255]
    return exp, log, mul, inv


EXP, LOG, MUL, INV = _build_tables()
"""``EXP[i] = g^i`` (doubled so sums of logs need no modulo), ``LOG[x]``, the full 256x256
product table ``MUL[a, b]`` (64 KiB) and the inverse table ``INV[a]`` (``INV[0] = 0``)."""


def gf_add(a: int, b: int) -> int:
    return (int(a) ^ int(b)) & 0xFF


def gf_mul(a: int, b: int) -> int:
    return int(MUL[int(a) & 0xFF, int(b) & 0xFF])


def gf_inv(a: int) -> int:
    if int(a) & 0xFF == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    return int(INV[int(a) & 0xFF])


def gf_div(a: int, b: int) -> int:
    return gf_mul(a, gf_inv(b))


def gf_pow(a: int, e: int) -> int:
    a = int(a) & 0xFF
    if e == 0:
        return 1
    if a == 0:
        return 0
    return int(EXP[(int(LOG[a]) * e) % 255])


# ---- matrices ----------------------------------------------------------------------------------
def mat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product over GF(2^8) of small uint8 matrices (coefficients, not data)."""
    a = np.asarray(a, dtype=np.uint8)
    b = np.asarray(b, dtype=np.uint8)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"shape mismatch {a.shape} x {b.shape}")
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.uint8)
    for t in range(a.shape[1]):
        out ^= MUL[a[:, t][:, None], b[t, :][None, :]]
    return out


class SingularMatrix(ValueError):
    """The matrix has no inverse over GF(2^8) (the fragments given cannot decode)."""


def mat_inv(m: np.ndarray) -> np.ndarray:
    """Inverse of a square uint8 matrix over GF(2^8) by Gauss-Jordan elimination."""
    a = np.array(m, dtype=np.uint8, copy=True)
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"not a square matrix: {a.shape}")
    inv = np.eye(n, dtype=np.uint8)
    for col in range(n):
        nz = np.nonzero(a[col:, col])[0]
        if nz.size == 0:
            raise SingularMatrix(f"matrix is singular (column {col})")
        piv = col + int(nz[0])
        if piv != col:
            a[[col, piv]] = a[[piv, col]]
            inv[[col, piv]] = inv[[piv, col]]
        f = INV[a[col, col]]
        a[col] = MUL[f, a[col]]
        inv[col] = MUL[f, inv[col]]
        factors = a[:, col].copy()
        factors[col] = 0
        rows = np.nonzero(factors)[0]
        if rows.size:
            a[rows] ^= MUL[factors[rows][:, None], a[col][None, :]]
            inv[rows] ^= MUL[factors[rows][:, None], inv[col][None, :]]
    return inv


def mat_rank(m: np.ndarray) -> int:
    """Rank over GF(2^8) (used to check that coefficient sets can decode)."""
    a = np.array(m, dtype=np.uint8, copy=True)
    rows, cols = a.shape
    r = 0
    for col in range(cols):
        if r == rows:
            break
        nz = np.nonzero(a[r:, col])[0]
        if nz.size == 0:
            continue
        piv = r + int(nz[0])
        if piv != r:
            a[[r, piv]] = a[[piv, r]]
        a[r] = MUL[INV[a[r, col]], a[r]]
        factors = a[:, col].copy()
        factors[r] = 0
        nzr = np.nonzero(factors)[0]
        if nzr.size:
            a[nzr] ^= MUL[factors[nzr][:, None], a[r][None, :]]
        r += 1
    return r


# ---- regions -----------------------------------------------------------------------------------
def mul_region(coef: int, src: np.ndarray) -> np.ndarray:
    """``coef * src`` byte by byte, as a new uint8 array."""
    src = np.asarray(src, dtype=np.uint8)
    c = int(coef) & 0xFF
    if c == 0:
        return np.zeros_like(src)
    if c == 1:
        return src.copy()
    from zflow.tsdb.coding import kernels as gfkernels

    return gfkernels.mul_region(c, src)


def addmul_region(dst: np.ndarray, coef: int, src: np.ndarray) -> np.ndarray:
    """``dst ^= coef * src`` in place (the inner step of encoding and decoding); returns dst."""
    c = int(coef) & 0xFF
    if dst.shape != src.shape:
        raise ValueError(f"region shapes differ: {dst.shape} vs {src.shape}")
    if c == 0:
        return dst
    if c == 1:
        np.bitwise_xor(dst, src, out=dst)
        return dst
    from zflow.tsdb.coding import kernels as gfkernels

    gfkernels.addmul_region(dst, c, np.asarray(src, dtype=np.uint8))
    return dst


def matmul_region(coefs: np.ndarray, src: Any, out: Any = None) -> Any:
    """``coefs (r, k) x src (k, L) -> (r, L)``: r linear combinations of k regions in one pass.

    This is encoding (coefs = coding matrix) and decoding (coefs = rows of an inverse). ``src``
    is a (k, L) array or k separate buffers; ``out`` optionally names r rows to write into.
    """
    from zflow.tsdb.coding import kernels as gfkernels

    return gfkernels.matmul_region(np.asarray(coefs, dtype=np.uint8), src, out=out)
