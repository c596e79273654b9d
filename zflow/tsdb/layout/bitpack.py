"""Fixed-width bit packing that keeps every value addressable.

Value ``i`` of a ``b``-bit sub-column occupies stream bits ``[i*b, (i+1)*b)``, LSB-first
(bit ``j`` of the stream is bit ``j % 8`` of byte ``j // 8``). Eight values are exactly ``b``
bytes, so a run of rows starting at a multiple of 8 starts on a byte boundary; the bytes of
rows ``[r0, r1)`` are :func:`byte_span`. Reading picks single rows out of a sparse buffer, so a
query unpacks only the rows it fetched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

U64 = np.uint64


def packed_size(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def byte_span(r0: int, r1: int, bits: int) -> tuple[int, int]:
    """Bytes ``[start, end)`` holding rows ``[r0, r1)``."""
    return (r0 * bits) // 8, (r1 * bits + 7) // 8


def pack(values: np.ndarray, bits: int) -> bytes:
    """Pack uint64 values of at most ``bits`` bits each."""
    n = len(values)
    if bits == 0 or n == 0:
        return b""
    if bits % 8 == 0:
        width = bits // 8
        le = np.ascontiguousarray(values, dtype="<u8").view(np.uint8).reshape(n, 8)
        return le[:, :width].tobytes()
    v = np.asarray(values, dtype=U64)
    out = bytearray()
    step = 1 << 16  # bound the (rows x bits) bit matrix
    for s in range(0, n, step):
        part = v[s : s + step]
        bitm = ((part[:, None] >> np.arange(bits, dtype=U64)) & U64(1)).astype(np.uint8)
        out += np.packbits(bitm.ravel(), bitorder="little").tobytes()
        if s + step < n:
            assert (step * bits) % 8 == 0
    return bytes(out[: packed_size(n, bits)])


_KERNEL: Callable[..., None] | Literal[False] | None = None


def _numba_kernel() -> Callable[..., None] | Literal[False]:
    """A compiled gather (numba, cached on disk); False when numba is unavailable."""
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba
        except ImportError:
            _KERNEL = False
            return _KERNEL

        @numba.njit(cache=True, nogil=True)
        def gather(buf, rows, bits, out):  # pragma: no cover - compiled
            mask = np.uint64(0xFFFFFFFFFFFFFFFF) if bits == 64 else (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
            for j in range(rows.shape[0]):
                pos = rows[j] * bits
                b0 = pos >> 3
                sh = pos & 7
                v = np.uint64(0)
                nbytes = (sh + bits + 7) >> 3
                for t in range(min(nbytes, 8)):
                    v |= np.uint64(buf[b0 + t]) << np.uint64(8 * t)
                v >>= np.uint64(sh)
                if nbytes > 8:
                    v |= np.uint64(buf[b0 + 8]) << np.uint64(64 - sh)
                out[j] = v & mask

        _KERNEL = gather
    return _KERNEL


def unpack_rows(buf: np.ndarray, rows: np.ndarray, bits: int) -> np.ndarray:
    """Values of ``rows`` from a packed stream ``buf`` (uint8, may be sparse/zero elsewhere).

    ``buf`` must extend at least 9 bytes past the last value (callers pad their buffers)."""
    rows = np.asarray(rows, dtype=np.int64)
    if bits == 0:
        return np.zeros(len(rows), dtype=U64)
    kernel = _numba_kernel() if len(rows) > 256 else False
    if kernel:
        need = (int(rows.max()) + 1) * bits // 8 + 9
        b = buf if len(buf) >= need else np.concatenate([buf, np.zeros(need - len(buf), dtype=np.uint8)])
        out = np.empty(len(rows), dtype=U64)
        kernel(np.ascontiguousarray(b, dtype=np.uint8), rows, bits, out)
        return out
    if bits % 8 == 0:
        width = bits // 8
        pad = np.zeros(8, dtype=np.uint8)
        b = np.concatenate([buf, pad]) if len(buf) < rows.max(initial=-1) * width + 8 else buf
        idx = rows[:, None] * width + np.arange(width)
        raw = np.zeros((len(rows), 8), dtype=np.uint8)
        raw[:, :width] = b[idx]
        return raw.view("<u8").ravel().astype(U64)
    padded = np.concatenate([np.asarray(buf, dtype=np.uint8), np.zeros(9, dtype=np.uint8)])
    bitpos = rows * bits
    byte0 = bitpos >> 3
    shift = (bitpos & 7).astype(U64)
    lo = np.zeros(len(rows), dtype=U64)
    for j in range(8):
        lo |= padded[byte0 + j].astype(U64) << U64(8 * j)
    hi = padded[byte0 + 8].astype(U64)
    val = lo >> shift
    carry = np.where(shift > 0, hi << ((U64(64) - shift) & U64(63)), U64(0))
    val |= carry
    if bits < 64:
        val &= (U64(1) << U64(bits)) - U64(1)
    return val


def unpack(buf: bytes | np.ndarray, n: int, bits: int) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else buf
    return unpack_rows(arr, np.arange(n), bits)
