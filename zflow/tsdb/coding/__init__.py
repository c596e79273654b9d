"""Coding stage: systematic RLNC over GF(2^8) and what it does to fragments.

* :mod:`.gf256` - field arithmetic, scalar and over regions (``matmul_region``)
* :mod:`.kernels` - region kernels (gfni / avx2 / numba / numpy), picked once per process;
  ``_kernels_simd`` and ``_kernels_numba`` are their compiled bodies
* :mod:`.rlnc` - coding parameters, encode, decode, combine, recode (``CodingParams``)
* :mod:`.fragments` - an object sealed into n fragments, its coded record, chunk repair and
  fragment rebuild (the container format itself is :mod:`storage_backends.fragment_format`)
"""
