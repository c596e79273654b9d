"""numba kernels behind :mod:`zflow.tsdb.coding.kernels` (imported only when numba is installed).

Words are 8 packed GF(2^8) elements. ``xtime`` doubles all of them at once::

    2x = ((x & 0x7f..) << 1) ^ (((x & 0x80..) - ((x & 0x80..) >> 7)) & 0x1d..)

(the subtraction turns each set top bit into 0x7f in its own byte, which masks to 0x1d, the
low byte of the polynomial 0x11D; no borrow crosses a byte).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

LO7 = np.uint64(0x7F7F7F7F7F7F7F7F)
HI1 = np.uint64(0x8080808080808080)
RED = np.uint64(0x1D1D1D1D1D1D1D1D)
ONE = np.uint64(1)
SEVEN = np.uint64(7)


@njit(cache=True, inline="always")
def xtime(x):  # pragma: no cover - compiled
    h = x & HI1
    return ((x & LO7) << ONE) ^ ((h - (h >> SEVEN)) & RED)


@intrinsic
def _words_at(typingctx, addr):
    """An 8-byte-aligned address (int64) as a uint64 pointer, for ``carray``."""
    sig = types.CPointer(types.uint64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@njit(cache=True, boundscheck=False, nogil=True)
def matmul64(masks, src_addrs, out_addrs, nwords, block):  # pragma: no cover - compiled
    """out_i = XOR_j coef[i, j] * src_j over ``nwords`` uint64 words at the given addresses.

    Coefficients come as bit masks (r, k, 8); addresses must be 8-byte aligned.
    """
    r = masks.shape[0]
    k = masks.shape[1]
    pw = np.empty((8, block), dtype=np.uint64)
    for w0 in range(0, nwords, block):
        nb = min(block, nwords - w0)
        for i in range(r):
            o = carray(_words_at(out_addrs[i]), (nwords,))
            o[w0:w0 + nb] = 0
        for j in range(k):
            s = carray(_words_at(src_addrs[j]), (nwords,))[w0:w0 + nb]
            p0 = pw[0]
            p1 = pw[1]
            p2 = pw[2]
            p3 = pw[3]
            p4 = pw[4]
            p5 = pw[5]
            p6 = pw[6]
            p7 = pw[7]
            for w in range(nb):
                x = s[w]
                p0[w] = x
                x = xtime(x)
                p1[w] = x
                x = xtime(x)
                p2[w] = x
                x = xtime(x)
                p3[w] = x
                x = xtime(x)
                p4[w] = x
                x = xtime(x)
                p5[w] = x
                x = xtime(x)
                p6[w] = x
                x = xtime(x)
                p7[w] = x
            i = 0
            while i + 2 <= r:  # two output rows per pass: each power is loaded once for both
                a0, a1, a2, a3 = masks[i, j, 0], masks[i, j, 1], masks[i, j, 2], masks[i, j, 3]
                a4, a5, a6, a7 = masks[i, j, 4], masks[i, j, 5], masks[i, j, 6], masks[i, j, 7]
                b0, b1, b2, b3 = masks[i + 1, j, 0], masks[i + 1, j, 1], masks[i + 1, j, 2], masks[i + 1, j, 3]
                b4, b5, b6, b7 = masks[i + 1, j, 4], masks[i + 1, j, 5], masks[i + 1, j, 6], masks[i + 1, j, 7]
                oa = carray(_words_at(out_addrs[i]), (nwords,))[w0:w0 + nb]
                ob = carray(_words_at(out_addrs[i + 1]), (nwords,))[w0:w0 + nb]
                for w in range(nb):
                    q0, q1, q2, q3 = p0[w], p1[w], p2[w], p3[w]
                    q4, q5, q6, q7 = p4[w], p5[w], p6[w], p7[w]
                    oa[w] ^= (((q0 & a0) ^ (q1 & a1)) ^ ((q2 & a2) ^ (q3 & a3))) ^ (
                        ((q4 & a4) ^ (q5 & a5)) ^ ((q6 & a6) ^ (q7 & a7)))
                    ob[w] ^= (((q0 & b0) ^ (q1 & b1)) ^ ((q2 & b2) ^ (q3 & b3))) ^ (
                        ((q4 & b4) ^ (q5 & b5)) ^ ((q6 & b6) ^ (q7 & b7)))
                i += 2
            if i < r:
                m0, m1, m2, m3 = masks[i, j, 0], masks[i, j, 1], masks[i, j, 2], masks[i, j, 3]
                m4, m5, m6, m7 = masks[i, j, 4], masks[i, j, 5], masks[i, j, 6], masks[i, j, 7]
                o = carray(_words_at(out_addrs[i]), (nwords,))[w0:w0 + nb]
                for w in range(nb):
                    o[w] ^= (((p0[w] & m0) ^ (p1[w] & m1)) ^ ((p2[w] & m2) ^ (p3[w] & m3))) ^ (
                        ((p4[w] & m4) ^ (p5[w] & m5)) ^ ((p6[w] & m6) ^ (p7[w] & m7)))
