"""The fused row-state kernels equal their numpy reference (random data, edge widths/values)."""

from __future__ import annotations

import numpy as np
import pytest

from zflow.errors import RuntimeFailure
from zflow.tsdb.layout import bitpack
from zflow.tsdb.query import rowstates

U64 = np.uint64


def _stream(values: np.ndarray, bits: int) -> np.ndarray:
    packed = np.frombuffer(bitpack.pack(values, bits), dtype=np.uint8)
    return np.concatenate([packed, np.zeros(16, dtype=np.uint8)])  # padded like Fetcher buffers


def _rand(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    if bits == 0:
        return np.zeros(n, dtype=U64)
    v = rng.integers(0, 1 << 63, n, dtype=np.int64).astype(U64) * U64(2) + rng.integers(0, 2, n).astype(U64)
    v = v if bits == 64 else v & ((U64(1) << U64(bits)) - U64(1))
    v[:3] = [0, (1 << bits) - 1 if bits < 64 else 0xFFFFFFFFFFFFFFFF, 1 if bits else 0]  # edge values
    return v


@pytest.mark.parametrize("dev_bits", [0, 1, 5, 6, 8, 13, 31, 57, 63, 64])
@pytest.mark.parametrize("n_bases", [1, 2, 37])
def test_key_states_kernel_matches_numpy(dev_bits: int, n_bases: int) -> None:
    rng = np.random.default_rng(dev_bits * 100 + n_bases)
    n = 3000
    shift = dev_bits
    base_w = 64 - dev_bits
    n_bases = min(n_bases, 1 << base_w)  # plain storage (no base bits) has one base
    bases = np.sort(rng.choice(1 << min(base_w, 20), n_bases, replace=False).astype(U64))
    id_bits = int(n_bases - 1).bit_length()
    ids = rng.integers(0, n_bases, n).astype(U64)
    dev = _rand(rng, n, dev_bits)
    id_buf, dev_buf = _stream(ids, id_bits), _stream(dev, dev_bits)
    keys = (bases[ids.astype(np.int64)] << U64(shift)) | dev if shift < 64 else dev
    picks = np.sort(keys[rng.integers(0, n, 4)])
    ivs = [(0, int(picks[0])), (int(picks[1]), int(picks[2])), (int(picks[3]), int(picks[3]))]
    for rows in (np.arange(n), np.sort(rng.choice(n, 900, replace=False)), np.arange(n - 300, n),
                 np.arange(5, n - 3)):
        got = rowstates.key_states(id_buf, id_bits, dev_buf, dev_bits, rows, bases, shift, ivs)
        ref = rowstates.key_states_numpy(id_buf, id_bits, dev_buf, dev_bits, rows, bases, shift, ivs)
        assert got.dtype == np.int8 and np.array_equal(got, ref)
        if rows[-1] - rows[0] + 1 == len(rows):  # the same run given as a range
            run = range(int(rows[0]), int(rows[-1]) + 1)
            assert np.array_equal(rowstates.key_states(id_buf, id_bits, dev_buf, dev_bits, run, bases, shift, ivs), ref)
        want = np.zeros(len(rows), dtype=bool)
        for a, b in ivs:
            want |= (keys[rows] >= U64(a)) & (keys[rows] <= U64(b))
        assert np.array_equal(ref, want.astype(np.int8) * 2)


@pytest.mark.parametrize("bits", [0, 1, 3, 7, 8, 9, 13, 17, 31, 56, 57, 64])
def test_lookup_run_matches_numpy(bits: int) -> None:
    rng = np.random.default_rng(bits)
    n = 5000
    size = min(1 << bits, 4096)
    vals = rng.integers(0, size, n).astype(U64)
    vals[:2] = [0, size - 1]
    table = rng.integers(0, 3, size).astype(np.int8)
    buf = _stream(vals, bits)
    for r0, m in ((0, n), (1, 700), (n - 1000, 1000), (17, 10)):
        got = rowstates.lookup_run(buf, r0, m, bits, table)
        assert np.array_equal(got, table[vals[r0 : r0 + m].astype(np.int64)])


def test_corrupt_base_ids_are_reported_not_read_out_of_bounds() -> None:
    n = 2000
    ids = np.full(n, 3, dtype=U64)  # 2 bits, but only 2 bases
    bases = np.array([1, 5], dtype=U64)
    buf = _stream(ids, 2)
    dev_buf = _stream(np.zeros(n, dtype=U64), 4)
    with pytest.raises(RuntimeFailure, match="dictionary"):
        rowstates.key_states(buf, 2, dev_buf, 4, np.arange(n), bases, 4, [(0, 100)])
    with pytest.raises(RuntimeFailure, match="dictionary"):
        rowstates.lookup_run(buf, 0, n, 2, np.zeros(2, dtype=np.int8))
