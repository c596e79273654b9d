"""GF(2^8) region dot products with the x86 GFNI instruction ``vgf2p8affineqb``, through numba.

Multiplying by a constant ``c`` is a linear map on the 8 bits of a byte, i.e. an 8x8 bit matrix;
``vgf2p8affineqb`` applies such a matrix to 32 bytes at once (one instruction, any field
polynomial - ISA-L uses the same trick). numba has no vector types, so the inner loop is
emitted as LLVM IR by an ``@intrinsic``: for 32-byte step ``w`` it loads the same vector of every
source, multiplies each by its matrix, XORs them and stores once (ISA-L's ``dot_prod`` shape, no
read-modify-write of the output). Sources are raw addresses, so separate fragment buffers are
used in place (no stacking copy).

Imported only when the CPU reports GFNI and AVX2 (see :func:`available`); everything else uses
the portable kernels in :mod:`zflow.tsdb._gfnumba`.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from zflow.tsdb.gf256 import MUL

VEC = 32  # bytes per vector (ymm)


def available() -> bool:
    try:
        import llvmlite.binding as ll

        feats = ll.get_host_cpu_features()
        return bool(feats.get("gfni")) and bool(feats.get("avx2"))
    except Exception:
        return False


def affine_matrix(c: int) -> int:
    """The 64-bit ``vgf2p8affineqb`` matrix of multiplication by ``c`` in GF(2^8)/0x11D.

    Output bit i is parity(matrix byte (7 - i) AND x); bit b of that byte is bit i of c * 2^b.
    """
    m = 0
    for i in range(8):
        row = 0
        for b in range(8):
            if (int(MUL[c, 1 << b]) >> i) & 1:
                row |= 1 << b
        m |= row << (8 * (7 - i))
    return m


_AFFINE = np.array([affine_matrix(c) for c in range(256)], dtype=np.uint64)


def affine_matrices(coefs: np.ndarray) -> np.ndarray:
    return _AFFINE[np.asarray(coefs, dtype=np.uint8)]


@intrinsic
def _dot(typingctx, dst_addr, src_addrs, mats, offset, nvec):
    """dst[offset + 32v ...] = XOR_j mats[j] * src_j[offset + 32v ...] for v in range(nvec)."""
    sig = types.void(types.int64, src_addrs, mats, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        dst_i, srcs_v, mats_v, off, n = args
        srcs = context.make_array(signature.args[1])(context, builder, srcs_v)
        matsa = context.make_array(signature.args[2])(context, builder, mats_v)
        k = builder.extract_value(srcs.shape, 0)
        i8, i64 = ir.IntType(8), ir.IntType(64)
        vec = ir.VectorType(i8, VEC)
        q4 = ir.VectorType(i64, VEC // 8)
        fnty = ir.FunctionType(vec, [vec, vec, i8])
        affine = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.vgf2p8affineqb.256")
        # the matrices, broadcast once: alloca'd array of k vectors
        mvecs = cgutils.alloca_once(builder, vec, size=ir.Constant(i64, 256))  # k <= 256
        with cgutils.for_range(builder, k) as jl:
            m = builder.load(cgutils.gep(builder, matsa.data, jl.index))
            splat = ir.Constant(q4, None)
            for lane in range(VEC // 8):
                splat = builder.insert_element(splat, m, ir.Constant(ir.IntType(32), lane))
            builder.store(builder.bitcast(splat, vec), cgutils.gep(builder, mvecs, jl.index))
        with cgutils.for_range(builder, n) as vl:
            pos = builder.add(off, builder.mul(vl.index, ir.Constant(i64, VEC)))
            acc = cgutils.alloca_once_value(builder, ir.Constant(vec, None))
            with cgutils.for_range(builder, k) as jl:
                base = builder.load(cgutils.gep(builder, srcs.data, jl.index))
                ptr = builder.inttoptr(builder.add(base, pos), vec.as_pointer())
                x = builder.load(ptr, align=1)
                y = builder.call(affine, [x, builder.load(cgutils.gep(builder, mvecs, jl.index)),
                                          ir.Constant(i8, 0)])
                builder.store(builder.xor(builder.load(acc), y), acc)
            dptr = builder.inttoptr(builder.add(dst_i, pos), vec.as_pointer())
            builder.store(builder.load(acc), dptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def matmul_gfni(mats, src_addrs, out_addrs, nvec, block_vecs):  # pragma: no cover - compiled
    """out_i[0:32*nvec] = XOR_j mats[i, j] * src_j, in blocks of ``block_vecs`` vectors."""
    r = mats.shape[0]
    for v0 in range(0, nvec, block_vecs):
        nb = min(block_vecs, nvec - v0)
        for i in range(r):
            _dot(out_addrs[i], src_addrs, mats[i], v0 * 32, nb)
