"""GF(2^8) arithmetic, systematic RLNC, the fragment container and placement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_backends import fragment_format
from zflow.tsdb.coding import fragments, gf256, rlnc
from zflow.tsdb.coding import kernels as gfkernels
from zflow.tsdb.ingest import fragment_placement as placement

byte = st.integers(0, 255)
nonzero = st.integers(1, 255)


def slow_mul(a: int, b: int) -> int:
    """Shift-and-add multiplication modulo 0x11D: the definition, independent of the tables."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        b >>= 1
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
    return out


# ---- field -------------------------------------------------------------------------------------
def test_tables_match_definition() -> None:
    for a in range(256):
        for b in range(0, 256, 7):
            assert gf256.gf_mul(a, b) == slow_mul(a, b)
    assert gf256.MUL.shape == (256, 256)


@settings(max_examples=300, deadline=None)
@given(byte, byte, byte)
def test_field_axioms(a: int, b: int, c: int) -> None:
    mul, add = gf256.gf_mul, gf256.gf_add
    assert mul(a, b) == mul(b, a)
    assert mul(mul(a, b), c) == mul(a, mul(b, c))
    assert mul(a, add(b, c)) == add(mul(a, b), mul(a, c))
    assert add(a, a) == 0
    assert mul(a, 1) == a and mul(a, 0) == 0


@settings(max_examples=200, deadline=None)
@given(nonzero, nonzero)
def test_inverse_and_division(a: int, b: int) -> None:
    assert gf256.gf_mul(a, gf256.gf_inv(a)) == 1
    assert gf256.gf_mul(gf256.gf_div(a, b), b) == a
    assert gf256.gf_pow(a, 255) == 1


def test_zero_has_no_inverse() -> None:
    with pytest.raises(ZeroDivisionError):
        gf256.gf_inv(0)


def test_matrix_inverse() -> None:
    rng = np.random.default_rng(3)
    for size in (1, 2, 5, 10):
        while True:
            m = rng.integers(0, 256, (size, size), dtype=np.uint8)
            if gf256.mat_rank(m) == size:
                break
        inv = gf256.mat_inv(m)
        assert (gf256.mat_mul(m, inv) == np.eye(size, dtype=np.uint8)).all()
    singular = np.array([[1, 2], [2, 4]], dtype=np.uint8)  # row 2 = 2 * row 1
    assert gf256.mat_rank(singular) == 1
    with pytest.raises(gf256.SingularMatrix):
        gf256.mat_inv(singular)


# ---- region kernels ----------------------------------------------------------------------------
@pytest.fixture(params=gfkernels.BACKENDS)
def kernel_backend(request):
    """Run a test once per region-kernel backend this machine can run."""
    if request.param not in gfkernels.available_backends():
        pytest.skip(f"GF kernel {request.param!r} unavailable here (CPU features, numba, ZFLOW_GF_KERNEL)")
    with gfkernels.forced(request.param):
        assert gfkernels.backend() == request.param
        yield request.param


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 31, 32, 63, 4096 + 5, 3 * 4096 * 8 + 3, 40 * 4096 + 32])
def test_matmul_region_matches_scalar(kernel_backend, length: int) -> None:
    rng = np.random.default_rng(length)
    coefs = rng.integers(0, 256, (3, 5), dtype=np.uint8)
    coefs[0, 0], coefs[1, 1] = 0, 1
    src = rng.integers(0, 256, (5, length), dtype=np.uint8)
    got = gf256.matmul_region(coefs, src)
    want = np.zeros((3, length), dtype=np.uint8)
    for i in range(3):
        for j in range(5):
            want[i] ^= gf256.MUL[coefs[i, j]][src[j]]
    assert got.shape == (3, length)
    assert (got == want).all()
    # a list of separate (non-contiguous) rows gives the same answer
    rows = [np.ascontiguousarray(src[j]) for j in range(5)]
    assert (gf256.matmul_region(coefs, rows) == want).all()
    # strided rows (a column slice of a wider array) and bytes objects
    wide = np.zeros((5, length + 3), dtype=np.uint8)
    wide[:, 1:length + 1] = src
    assert (gf256.matmul_region(coefs, wide[:, 1:length + 1]) == want).all()
    assert (gf256.matmul_region(coefs, [r.tobytes() for r in rows]) == want).all()
    # rows at odd addresses (1-byte offset views), and results written into given rows
    odd = [np.concatenate([np.array([7], np.uint8), r])[1:] for r in rows]
    assert (gf256.matmul_region(coefs, odd) == want).all()
    sink = np.zeros((3, length + 1), dtype=np.uint8)
    targets = [sink[i, 1:] for i in range(3)]
    gf256.matmul_region(coefs, rows, out=targets)
    assert (sink[:, 1:] == want).all() and (sink[:, 0] == 0).all()


def test_region_ops(kernel_backend) -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, 1000, dtype=np.uint8)
    for c in (0, 1, 2, 0x8E, 255):
        assert (gf256.mul_region(c, src) == gf256.MUL[c][src]).all()
        dst = rng.integers(0, 256, 1000, dtype=np.uint8)
        want = dst ^ gf256.MUL[c][src]
        gf256.addmul_region(dst, c, src)
        assert (dst == want).all()


# ---- RLNC --------------------------------------------------------------------------------------
def _fragments(params: rlnc.CodingParams, length: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (params.k, length), dtype=np.uint8)
    coded = rlnc.encode(data, params)
    frags = {i: data[i] for i in range(params.k)}
    frags.update({params.k + i: coded[i] for i in range(params.m)})
    return data, frags


@pytest.mark.parametrize("k,n", [(1, 1), (1, 3), (2, 3), (3, 5), (4, 6), (5, 8)])
def test_decode_from_every_k_subset(k: int, n: int) -> None:
    params = rlnc.CodingParams(k, n, seed=11)
    data, frags = _fragments(params, 1001)
    for subset in itertools.combinations(range(n), k):
        out = rlnc.decode({i: frags[i] for i in subset}, params)
        assert (out == data).all(), subset


def test_decode_random_subsets_10_14() -> None:
    params = rlnc.CodingParams(10, 14, seed=5)
    data, frags = _fragments(params, 4099)
    rng = np.random.default_rng(0)
    subsets = [tuple(range(4, 14))] + [tuple(rng.choice(14, 10, replace=False)) for _ in range(20)]
    for subset in subsets:
        out = rlnc.decode({int(i): frags[int(i)] for i in subset}, params)
        assert (out == data).all(), subset


@pytest.mark.parametrize("k,n,seed", [(4, 6, 0), (4, 6, 1), (10, 14, 7), (6, 9, 123), (3, 7, 2)])
def test_every_k_subset_is_decodable(k: int, n: int, seed: int) -> None:
    params = rlnc.CodingParams(k, n, seed)
    assert rlnc.verify_all_subsets(params.generator()) == []


def test_coefficients_are_deterministic_and_seeded() -> None:
    a = rlnc.CodingParams(10, 14, 1).coefficients()
    assert (a == rlnc.CodingParams(10, 14, 1).coefficients()).all()
    assert not (a == rlnc.CodingParams(10, 14, 2).coefficients()).all()
    assert a.shape == (4, 10) and a.dtype == np.uint8 and (a != 0).all()
    assert rlnc.CodingParams.from_dict(rlnc.CodingParams(4, 6, 9).to_dict()) == rlnc.CodingParams(4, 6, 9)


@pytest.mark.parametrize("bad", [(0, 3), (4, 3), (10, 300)])
def test_bad_params(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="k <= n"):
        rlnc.CodingParams(*bad)


def test_too_few_fragments() -> None:
    params = rlnc.CodingParams(4, 6, 0)
    _data, frags = _fragments(params, 64)
    with pytest.raises(gf256.SingularMatrix, match="need 4"):
        rlnc.decode({i: frags[i] for i in (1, 2, 5)}, params)


def test_decode_ranges() -> None:
    params = rlnc.CodingParams(10, 14, 3)
    data, frags = _fragments(params, 10000)
    a, b = 1234, 5678
    lost = (0, 3, 7, 9)
    avail = {i: frags[i][a:b].tobytes() for i in range(14) if i not in lost}
    got = rlnc.decode_ranges(avail, params)
    assert sorted(got) == list(lost)
    for j in lost:
        assert (got[j] == data[j][a:b]).all()
    # only some of them, and a data fragment that is present comes back untouched
    got = rlnc.decode_ranges(avail, params, want=[3, 4])
    assert (got[3] == data[3][a:b]).all() and (got[4] == data[4][a:b]).all()


def test_decode_ranges_rejects_uneven_ranges() -> None:
    params = rlnc.CodingParams(2, 3, 0)
    with pytest.raises(ValueError, match="differ in length"):
        rlnc.decode_ranges({0: b"abc", 2: b"ab"}, params)


def test_recode_then_decode() -> None:
    params = rlnc.CodingParams(4, 6, 2)
    data, frags = _fragments(params, 3000)
    rows = {i: params.row(i) for i in range(6)}
    # repair without decoding: a new fragment from coded fragments 4, 5 and data fragment 1
    new, row = rlnc.recode({i: frags[i] for i in (1, 4, 5)}, rows, new_seed=77)
    rows[6] = row
    for subset in itertools.combinations([0, 2, 3, 4, 6], 4):
        avail = {i: frags[i] if i != 6 else new for i in subset}
        if gf256.mat_rank(np.vstack([rows[i] for i in subset])) < 4:
            continue
        assert (rlnc.decode(avail, params, rows={6: row}) == data).all()
    # recoding from recoded fragments keeps tracking global rows
    newer, row2 = rlnc.recode({6: new, 0: frags[0]}, rows, new_seed=5)
    out = rlnc.decode({6: new, 7: newer, 2: frags[2], 3: frags[3]}, params, rows={6: row, 7: row2})
    assert (out == data).all()


def test_recode_replacement_keeps_every_subset_decodable() -> None:
    params = rlnc.CodingParams(4, 6, 2)
    _data, frags = _fragments(params, 512)
    rows = {i: params.row(i) for i in range(6)}
    lost = 5
    keep = {i: rows[i] for i in range(6) if i != lost}
    frag, row, _seed = rlnc.recode_replacement({i: frags[i] for i in (0, 1, 2, 3)}, rows, keep, 1)
    gen = np.vstack([*keep.values(), row])
    assert rlnc.verify_all_subsets(gen) == []
    assert (rlnc.combine_ranges({i: frags[i] for i in (0, 1, 2, 4)}, row, params) == frag).all()


def test_combine_ranges_rebuilds_a_coded_fragment() -> None:
    params = rlnc.CodingParams(3, 5, 8)
    _data, frags = _fragments(params, 777)
    got = rlnc.combine_ranges({i: frags[i][100:200] for i in (0, 2, 4)}, params.row(3), params)
    assert (got == frags[3][100:200]).all()


# ---- fragment container ------------------------------------------------------------------------
def test_fragment_layout_and_ranges() -> None:
    params = rlnc.CodingParams(4, 6, 1)
    data, frags = _fragments(params, 200_003)
    packed = fragments.make_fragments(data, params, chunk_size=65536)
    assert len(packed) == 6
    for i, blob in enumerate(packed):
        f = fragment_format.unpack_fragment(blob)
        h = f.header
        assert (h.index, h.k, h.n, h.seed, h.length, h.chunks) == (i, 4, 6, 1, 200_003, 4)
        assert (f.row == params.row(i)).all()
        a, b = h.file_range(70_000, 70_100)
        assert blob[a:b] == frags[i][70_000:70_100].tobytes()
        assert fragment_format.verify_chunks(blob) == []
        header_only = fragment_format.FragmentHeader.parse(blob[: fragment_format.HEADER_SIZE])
        crcs = fragment_format.parse_trailer(header_only, blob[h.trailer_offset:])
        assert fragment_format.verify_range(h, crcs, 65536, blob[a - 70_000 + 65536:b + 65536]) == []


def test_corrupted_chunk_detected_and_repaired() -> None:
    params = rlnc.CodingParams(4, 6, 1)
    data, _ = _fragments(params, 300_000, seed=9)
    packed = fragments.make_fragments(data, params, chunk_size=65536)
    for victim in (1, 5):  # a data fragment and a coded one
        bad = bytearray(packed[victim])
        bad[fragment_format.PAYLOAD_OFFSET + 70_000] ^= 0x40
        bad[fragment_format.PAYLOAD_OFFSET + 299_999] ^= 0x01
        assert fragment_format.verify_chunks(bad) == [1, 4]
        others = {i: packed[i] for i in range(6) if i != victim}
        assert fragments.repair_chunks(bad, others) == packed[victim]


def test_repair_skips_other_corrupt_fragments_and_reports_too_few() -> None:
    params = rlnc.CodingParams(2, 4, 1)
    data, _ = _fragments(params, 1000)
    packed = fragments.make_fragments(data, params, chunk_size=256)
    bad0 = bytearray(packed[0])
    bad0[fragment_format.PAYLOAD_OFFSET + 10] ^= 1
    bad1 = bytearray(packed[1])
    bad1[fragment_format.PAYLOAD_OFFSET + 20] ^= 1
    # fragment 1 is corrupt in the same chunk: it is skipped, 2 and 3 suffice
    assert fragments.repair_chunks(bad0, {1: bytes(bad1), 2: packed[2], 3: packed[3]}) == packed[0]
    with pytest.raises(fragment_format.FragmentError, match="only 1 intact"):
        fragments.repair_chunks(bad0, {1: bytes(bad1), 2: packed[2]})


def test_bad_fragment_bytes() -> None:
    params = rlnc.CodingParams(2, 3, 0)
    blob = fragments.make_fragments(np.zeros((2, 10), np.uint8), params)[0]
    with pytest.raises(fragment_format.FragmentError, match="not a zflow fragment"):
        fragment_format.unpack_fragment(b"x" * 600)
    broken = bytearray(blob)
    broken[40] ^= 1
    with pytest.raises(fragment_format.FragmentError, match="header checksum"):
        fragment_format.unpack_fragment(broken)
    with pytest.raises(fragment_format.FragmentError, match="bytes, header says"):
        fragment_format.unpack_fragment(blob[:-1])
    with pytest.raises(fragment_format.FragmentError, match="shorter"):
        fragment_format.FragmentHeader.parse(blob[:100])


# ---- placement ---------------------------------------------------------------------------------
def test_placement_distinct_and_balanced() -> None:
    locs = [f"loc{i}" for i in range(7)]
    counts = dict.fromkeys(range(7), 0)
    for obj in range(700):
        p = placement.place(f"obj{obj}", 6, locs)
        assert len(set(p)) == 6
        assert p == placement.place(f"obj{obj}", 6, locs)
        counts[p[0]] += 1
    assert min(counts.values()) > 50  # first (data) fragment spread over every location
    assert placement.by_location([2, 0, 1]) == {2: [0], 0: [1], 1: [2]}
    with pytest.raises(ValueError, match="at least 6 locations"):
        placement.place("x", 6, locs[:5])


def test_rebuild_and_recode_whole_fragments() -> None:
    params = rlnc.CodingParams(3, 5, 6)
    data, _ = _fragments(params, 50_000)
    packed = fragments.make_fragments(data, params, chunk_size=8192)
    # a lost data fragment and a lost coded fragment, rebuilt from any 3 others
    assert fragments.rebuild_fragment(1, {i: packed[i] for i in (0, 3, 4)}) == packed[1]
    assert fragments.rebuild_fragment(4, {i: packed[i] for i in (1, 2, 3)}) == packed[4]
    # a brand-new coded fragment recoded from coded ones only, self-describing through its header
    new = fragments.recode_fragment(5, {3: packed[3], 4: packed[4]}, new_seed=3)
    assert fragment_format.verify_chunks(new) == []
    blobs = {0: packed[0], 3: packed[3], 5: new}
    avail = {i: fragment_format.unpack_fragment(b).payload[100:900] for i, b in blobs.items()}
    got = rlnc.decode_ranges(avail, params, rows=fragment_format.fragment_rows(blobs))
    assert (got[1] == data[1][100:900]).all() and (got[2] == data[2][100:900]).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8).flatmap(lambda k: st.tuples(st.just(k), st.integers(k, k + 5))),
       st.integers(0, 2**32), st.integers(1, 700), st.randoms(use_true_random=False))
def test_any_k_fragments_decode(kn, seed: int, length: int, rnd) -> None:
    k, n = kn
    params = rlnc.CodingParams(k, n, seed)
    data, frags = _fragments(params, length, seed=seed % 1000)
    keep = rnd.sample(range(n), k)
    assert (rlnc.decode({i: frags[i] for i in keep}, params) == data).all()
    a = rnd.randrange(length)
    b = rnd.randrange(a, length) + 1
    got = rlnc.decode_ranges({i: frags[i][a:b] for i in keep}, params, want=list(range(k)))
    assert all((got[j] == data[j][a:b]).all() for j in range(k))


def test_many_sources(kernel_backend) -> None:
    rng = np.random.default_rng(4)
    coefs = rng.integers(0, 256, (2, 300), dtype=np.uint8)
    src = rng.integers(0, 256, (300, 100), dtype=np.uint8)
    want = np.zeros((2, 100), dtype=np.uint8)
    for i in range(2):
        for j in range(300):
            want[i] ^= gf256.MUL[coefs[i, j]][src[j]]
    assert (gf256.matmul_region(coefs, src) == want).all()


def test_region_shape_errors(kernel_backend) -> None:
    coefs = np.ones((2, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="3 coefficients per row but 2"):
        gf256.matmul_region(coefs, np.zeros((2, 64), np.uint8))
    with pytest.raises(ValueError, match="3 coefficients per row but 2"):
        gf256.matmul_region(coefs, np.zeros((2, 64), np.uint8), out=[np.zeros(64, np.uint8)] * 2)
    with pytest.raises(ValueError, match="as long as"):
        gf256.matmul_region(coefs, np.zeros((3, 64), np.uint8), out=[np.zeros(63, np.uint8)] * 2)
    with pytest.raises(ValueError, match="different lengths"):
        gf256.matmul_region(coefs, [np.zeros(64, np.uint8), np.zeros(64, np.uint8), np.zeros(8, np.uint8)])


def test_object_record_pieces_decode_from_any_k_and_skip_corrupt_ones() -> None:
    """The catalog entry copy the fragments carry: 1/k of it per fragment, any k give it back,
    a piece whose checksum fails is left out, and a lost piece is regenerated like a payload."""
    import itertools
    import os

    params = rlnc.CodingParams(3, 6, 11)
    record = os.urandom(1001)
    pieces = fragments.code_record(record, params)
    assert len(pieces) == 6 and len(pieces[0]) == 4 + -(-(len(record) + 4) // 3)
    rows = {i: tuple(int(x) for x in params.row(i)) for i in range(6)}
    for subset in itertools.combinations(range(6), 3):
        assert fragments.decode_record({i: (rows[i], pieces[i]) for i in subset}) == record, subset
    bad = bytearray(pieces[1])
    bad[10] ^= 1
    got = {0: (rows[0], pieces[0]), 1: (rows[1], bytes(bad)), 4: (rows[4], pieces[4])}
    assert fragments.decode_record(got) is None  # two intact pieces: not enough, and no wrong answer
    got[5] = (rows[5], pieces[5])
    assert fragments.decode_record(got) == record
    blobs = fragments.make_fragments(np.arange(3 * 500, dtype=np.uint8).reshape(3, 500) % 251, params,
                                     chunk_size=128, records=pieces)
    parsed = {i: fragment_format.unpack_fragment(b) for i, b in enumerate(blobs) if i in (0, 2, 5)}
    assert fragments.combine_record(parsed, params.row(4)) == pieces[4]
    assert fragments.rebuild_fragment(4, {i: blobs[i] for i in (0, 2, 5)}) == bytes(blobs[4])
