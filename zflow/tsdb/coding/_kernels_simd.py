"""SIMD GF(2^8) region dot products on x86, emitted as LLVM IR through numba intrinsics.

Two ways to multiply 32 bytes by a constant ``c`` in one or two instructions:

* **GFNI** (Ice Lake and later, Zen 4): multiplication by ``c`` is a linear map on the 8 bits of
  a byte, i.e. an 8x8 bit matrix, and ``vgf2p8affineqb`` applies such a matrix to 32 bytes;
* **AVX2** (Haswell and later, every Zen): the split-table method - ``c*x = T_lo[x & 15] ^
  T_hi[x >> 4]`` with two 16-entry tables looked up 32 bytes at a time by ``vpshufb``.

ISA-L uses the same two tricks. numba has no vector types, so the inner loop is written in IR by
an ``@intrinsic``: for each 32-byte step it loads the same vector of every source, multiplies it
by that source's constant, XORs the products and stores once (ISA-L's ``dot_prod`` shape, no
read-modify-write of the output). Sources and outputs are raw addresses, so fragments held in
separate buffers are used in place.

Only imported on x86 CPUs that report the features (see :func:`available`); everything else uses
the portable kernel in :mod:`zflow.tsdb.coding._kernels_numba`.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from zflow.tsdb.coding.gf256 import MUL

VEC = 32  # bytes per vector (ymm)
MAX_K = 256


@cache
def available(kind: str) -> bool:
    """Does this CPU run the ``gfni`` or ``avx2`` kernel?"""
    try:
        import llvmlite.binding as ll

        feats = ll.get_host_cpu_features()
    except Exception:
        return False
    need = {"gfni": ("gfni", "avx2"), "avx2": ("avx2",)}[kind]
    return all(bool(feats.get(f)) for f in need)


# ---- per-coefficient constants -----------------------------------------------------------------
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


_AFFINE = np.array([affine_matrix(c) for c in range(256)], dtype="<u8").view(np.uint8).reshape(256, 8)
_NIBBLES = np.concatenate([MUL[:, :16], MUL[:, np.arange(16) << 4]], axis=1)  # (256, 32)


def constants(kind: str, coefs: np.ndarray) -> np.ndarray:
    """(r, k) coefficients -> (r, k, B) bytes the kernel loads: 8 (affine matrix) or 32 (tables)."""
    table = _AFFINE if kind == "gfni" else _NIBBLES
    return np.ascontiguousarray(table[np.asarray(coefs, dtype=np.uint8)])


# ---- the IR ------------------------------------------------------------------------------------
GROUP = 4  # output rows per pass: each source vector is loaded once for all of them (ISA-L's 4vect)


def _make_dot(kind: str, group: int):  # one code generator: two multiply flavours, 1..4 rows
    width = 8 if kind == "gfni" else 32

    @intrinsic
    def dot(typingctx, dst_addrs, src_addrs, consts, offset, nvec):
        """dst_g[offset + 32v ...] = XOR_j c[g, j] * src_j[offset + 32v ...], g < group, v < nvec."""
        sig = types.void(dst_addrs, src_addrs, consts, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            dsts_v, srcs_v, consts_v, off, n = args
            dsts = context.make_array(signature.args[0])(context, builder, dsts_v)
            srcs = context.make_array(signature.args[1])(context, builder, srcs_v)
            cst = context.make_array(signature.args[2])(context, builder, consts_v)
            k = builder.extract_value(srcs.shape, 0)
            i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
            vec = ir.VectorType(i8, VEC)
            cbase = builder.bitcast(cst.data, i8.as_pointer())

            def const(value: int) -> ir.Constant:
                return ir.Constant(i64, value)

            def load_bytes(offset_bytes: ir.Value, count: int) -> ir.Value:
                ptr = builder.gep(cbase, [offset_bytes])
                return builder.load(builder.bitcast(ptr, ir.VectorType(i8, count).as_pointer()), align=1)

            # constants of (row g, source j) expanded to vectors once: slots 2 * (g * MAX_K + j) (+1)
            slots = cgutils.alloca_once(builder, vec, size=const(2 * MAX_K * group))
            for g in range(group):
                with cgutils.for_range(builder, k) as jl:
                    at = builder.mul(builder.add(builder.mul(const(g), k), jl.index), const(width))
                    s0 = cgutils.gep(builder, slots, builder.mul(builder.add(const(g * MAX_K), jl.index), const(2)))
                    if kind == "gfni":
                        m8 = load_bytes(at, 8)
                        rep = ir.Constant(ir.VectorType(i32, VEC), [i % 8 for i in range(VEC)])
                        builder.store(builder.shuffle_vector(m8, m8, rep), s0)
                    else:
                        dup = ir.Constant(ir.VectorType(i32, VEC), [i % 16 for i in range(VEC)])
                        lo = load_bytes(at, 16)
                        hi = load_bytes(builder.add(at, const(16)), 16)
                        builder.store(builder.shuffle_vector(lo, lo, dup), s0)
                        builder.store(builder.shuffle_vector(hi, hi, dup), builder.gep(s0, [const(1)]))

            if kind == "gfni":
                fn = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec, vec, i8]), "llvm.x86.vgf2p8affineqb.256")
            else:
                fn = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec, vec]), "llvm.x86.avx2.pshuf.b")
            nib = ir.Constant(vec, [0x0F] * VEC)
            four = ir.Constant(vec, [4] * VEC)

            def multiply(x: ir.Value, lo_idx: ir.Value | None, hi_idx: ir.Value | None,
                         slot: ir.Value) -> ir.Value:
                if kind == "gfni":
                    return builder.call(fn, [x, builder.load(slot), ir.Constant(i8, 0)])
                lo = builder.call(fn, [builder.load(slot), lo_idx])
                hi = builder.call(fn, [builder.load(builder.gep(slot, [const(1)])), hi_idx])
                return builder.xor(lo, hi)

            accs = [cgutils.alloca_once(builder, vec) for _ in range(group)]
            with cgutils.for_range(builder, n) as vl:
                pos = builder.add(off, builder.mul(vl.index, const(VEC)))
                for acc in accs:
                    builder.store(ir.Constant(vec, None), acc)
                with cgutils.for_range(builder, k) as jl:
                    base = builder.load(cgutils.gep(builder, srcs.data, jl.index))
                    x = builder.load(builder.inttoptr(builder.add(base, pos), vec.as_pointer()), align=1)
                    lo_idx = hi_idx = None
                    if kind != "gfni":
                        lo_idx, hi_idx = builder.and_(x, nib), builder.lshr(x, four)
                    for g, acc in enumerate(accs):
                        slot = cgutils.gep(builder, slots,
                                           builder.mul(builder.add(const(g * MAX_K), jl.index), const(2)))
                        builder.store(builder.xor(builder.load(acc), multiply(x, lo_idx, hi_idx, slot)), acc)
                for g, acc in enumerate(accs):
                    dst = builder.load(cgutils.gep(builder, dsts.data, const(g)))
                    builder.store(builder.load(acc), builder.inttoptr(builder.add(dst, pos), vec.as_pointer()),
                                  align=1)
            return context.get_dummy_value()

        return sig, codegen

    return dot


_gfni1, _gfni2, _gfni3, _gfni4 = (_make_dot("gfni", g) for g in (1, 2, 3, 4))
_avx1, _avx2, _avx3, _avx4 = (_make_dot("avx2", g) for g in (1, 2, 3, 4))


# Two separate drivers on purpose: one function calling both flavours would make LLVM compile
# a GFNI instruction on CPUs without GFNI, which fails at code generation.
@njit(cache=True, nogil=True)
def matmul_gfni(consts, src_addrs, out_addrs, nvec, block_vecs):  # pragma: no cover - compiled
    """out_i[0:32*nvec] = XOR_j coef[i, j] * src_j, 4 rows per pass, in blocks of vectors."""
    r = consts.shape[0]
    for v0 in range(0, nvec, block_vecs):
        nb = min(block_vecs, nvec - v0)
        i = 0
        while i + 4 <= r:
            _gfni4(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)
            i += 4
        if r - i == 3:
            _gfni3(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)
        elif r - i == 2:
            _gfni2(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)
        elif r - i == 1:
            _gfni1(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)


@njit(cache=True, nogil=True)
def matmul_avx2(consts, src_addrs, out_addrs, nvec, block_vecs):  # pragma: no cover - compiled
    """Same as :func:`matmul_gfni` with split nibble tables and ``vpshufb``."""
    r = consts.shape[0]
    for v0 in range(0, nvec, block_vecs):
        nb = min(block_vecs, nvec - v0)
        i = 0
        while i + 4 <= r:
            _avx4(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)
            i += 4
        if r - i == 3:
            _avx3(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)
        elif r - i == 2:
            _avx2(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)
        elif r - i == 1:
            _avx1(out_addrs[i:], src_addrs, consts[i:], v0 * 32, nb)


KERNELS = {"gfni": matmul_gfni, "avx2": matmul_avx2}
