"""numba kernels behind :mod:`zflow.tsdb.query.rowstates` (imported only when numba is installed;
top-level functions so ``cache=True`` really caches them across processes)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def get(buf, row, bits, mask):  # pragma: no cover - compiled
    # fixed 9-byte load (branch-free, so the loop vectorises); buffers are padded past the end
    pos = row * bits
    b0 = pos >> 3
    sh = np.uint64(pos & 7)
    v = np.uint64(0)
    for t in range(8):
        v |= np.uint64(buf[b0 + t]) << np.uint64(8 * t)
    v >>= sh
    v |= (np.uint64(buf[b0 + 8]) << np.uint64(1)) << (np.uint64(63) - sh)  # 9th byte, no branch
    return v & mask


@njit(cache=True, nogil=True)
def states(id_buf, id_bits, dev_buf, dev_bits, rows, bases, shift, lo, hi, out):  # pragma: no cover
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    im = full if id_bits == 64 else (np.uint64(1) << np.uint64(id_bits)) - np.uint64(1)
    dm = full if dev_bits == 64 else (np.uint64(1) << np.uint64(dev_bits)) - np.uint64(1)
    plain = shift >= 64
    sh = np.uint64(0) if plain else np.uint64(shift)
    top = np.uint64(bases.shape[0] - 1)
    bad = False
    const = np.uint64(0) if plain else bases[0] << sh  # the base when ids take 0 bits
    one = plain or id_bits == 0
    for j in range(rows.shape[0]):
        r = rows[j]
        key = get(dev_buf, r, dev_bits, dm)
        if one:
            key |= const
        else:
            i = get(id_buf, r, id_bits, im)
            bad |= i > top
            key |= bases[min(i, top)] << sh
        s = 0
        for t in range(lo.shape[0]):
            s |= (key >= lo[t]) & (key <= hi[t])
        out[j] = s << 1
    return bad


@njit(cache=True, nogil=True)
def lookup(buf, r0, bits, table, out):  # pragma: no cover - compiled
    """out[j] = table[value(r0 + j)]. Eight rows are exactly ``bits`` bytes starting on a byte
    boundary, so aligned groups load ceil(bits / 8) words once and shift all eight values out
    (about one byte load per value byte instead of nine per row)."""
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    m = full if bits == 64 else (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    top = np.uint64(table.shape[0] - 1)
    bad = False
    n = out.shape[0]
    j = 0
    if 0 < bits <= 56:
        while j < n and (r0 + j) % 8:
            v = get(buf, r0 + j, bits, m)
            bad |= v > top
            out[j] = table[min(v, top)]
            j += 1
        nw = (bits + 7) // 8
        words = np.zeros(nw + 1, dtype=np.uint64)
        while j + 8 <= n:
            g = (r0 + j) // 8 * bits
            for w in range(nw):
                x = np.uint64(0)
                for t in range(8):
                    x |= np.uint64(buf[g + 8 * w + t]) << np.uint64(8 * t)
                words[w] = x
            for k in range(8):
                o = k * bits
                wi = o >> 6
                sh = o & 63
                v = words[wi] >> np.uint64(sh)
                if sh + bits > 64:
                    v |= words[wi + 1] << np.uint64(64 - sh)
                v &= m
                bad |= v > top
                out[j + k] = table[min(v, top)]
            j += 8
    while j < n:
        v = get(buf, r0 + j, bits, m)
        bad |= v > top
        out[j] = table[min(v, top)]
        j += 1
    return bad


@njit(cache=True, nogil=True)
def run_in_range(buf, r0, bits, lo, hi, out):  # pragma: no cover - compiled
    """out[j] = 2 if lo <= value(r0 + j) <= hi else 0 for a row run (one base, one interval).
    For bits <= 8 eight rows share one 8-byte word (``bits`` bytes, byte-aligned at rows that
    are multiples of 8): one load per eight rows instead of one per row."""
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    m = full if bits == 64 else (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    n = out.shape[0]
    j = 0
    if 0 < bits <= 8:
        while j < n and (r0 + j) % 8:
            v = get(buf, r0 + j, bits, m)
            out[j] = ((v >= lo) & (v <= hi)) << 1
            j += 1
        ub = np.uint64(bits)
        while j + 8 <= n:
            b0 = (r0 + j) // 8 * bits
            w = np.uint64(0)
            for t in range(8):
                w |= np.uint64(buf[b0 + t]) << np.uint64(8 * t)
            for k in range(8):
                v = (w >> (np.uint64(k) * ub)) & m
                out[j + k] = ((v >= lo) & (v <= hi)) << 1
            j += 8
    while j < n:
        v = get(buf, r0 + j, bits, m)
        out[j] = ((v >= lo) & (v <= hi)) << 1
        j += 1
