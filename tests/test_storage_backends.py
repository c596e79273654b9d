"""Storage locations: local directory, the HTTP range server (a real process) and a Zenoh location
(a real process behind a real router); RFC 7233 range parsing; degraded reads across locations."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_backends import fragment_format, open_location
from storage_backends import range_wire as rangewire
from storage_backends.base import (
    BadKey,
    CorruptFragment,
    FragmentStore,
    KeyNotFound,
    LocationUnavailable,
    RangeNotSatisfiable,
)
from storage_backends.http_range import HttpRangeStore
from storage_backends.local_dir import LocalDirStore
from zflow.transport import free_port
from zflow.tsdb.coding import fragments, rlnc
from zflow.tsdb.ingest import fragment_placement as placement

ROOT = Path(__file__).resolve().parent.parent
DATA = os.urandom(200_000)


def spawn(args: list[str], ready: str) -> contextlib.AbstractContextManager[tuple[subprocess.Popen, str]]:
    from conftest import spawn_python

    return spawn_python(args, ready)


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    with spawn(["-m", "storage_backends.http_range_server", "--dir", str(directory), "--port", "0"],
               "listening on") as (proc, line):
        yield proc, line.split()[-1]


@contextlib.contextmanager
def zenoh_location(directory: Path, name: str, endpoint: str) -> Iterator[subprocess.Popen]:
    with spawn(["-m", "storage_backends.zenoh_location", "--dir", str(directory), "--name", name,
                "--connect", endpoint], "serving location") as (proc, _line):
        yield proc


# ---- the contract every backend keeps ----------------------------------------------------------
@pytest.fixture(params=["dir", "http", "zenoh"])
def store(request, tmp_path: Path) -> Iterator[FragmentStore]:
    if request.param == "dir":
        yield LocalDirStore(tmp_path / "loc")
    elif request.param == "http":
        with http_server(tmp_path / "loc") as (_p, url):
            s = open_location(url)
            yield s
            s.close()
    else:
        router = request.getfixturevalue("router")
        with zenoh_location(tmp_path / "loc", "loc1", router.endpoint):
            s = open_location("zenoh:loc1", connect=[router.endpoint], timeout=5)
            yield s
            s.close()


@pytest.mark.timeout(60)
def test_store_contract(store: FragmentStore) -> None:
    store.put("ds/obj/1/0", DATA)
    store.put("ds/obj/2/0", b"small")
    assert store.get("ds/obj/1/0") == DATA
    assert store.exists("ds/obj/1/0") and not store.exists("ds/obj/9/0")
    assert store.size("ds/obj/1/0") == len(DATA)
    assert store.list("ds/obj/1") == ["ds/obj/1/0"]
    assert store.list() == ["ds/obj/1/0", "ds/obj/2/0"]
    ranges = [(0, 10), (500, 700), (650, 900), (199_990, 200_000), (7, 7)]
    store.reset_stats()
    got = store.get_ranges("ds/obj/1/0", ranges)
    assert got == [DATA[a:b] for a, b in ranges]
    st = store.stats()
    assert st["requests"] == 1 and st["ranges"] == 4 and st["bytes_fetched"] == 10 + 200 + 250 + 10
    with pytest.raises(RangeNotSatisfiable):
        store.get_ranges("ds/obj/1/0", [(0, 10), (199_999, 200_001)])
    with pytest.raises(KeyNotFound):
        store.get("ds/obj/3/0")
    with pytest.raises(KeyNotFound):
        store.get_ranges("ds/obj/3/0", [(0, 1)])
    with pytest.raises(BadKey):
        store.put("../escape", b"x")
    # scrubbing where the data lives: only the verdict comes back
    params = rlnc.CodingParams(2, 3, 0)
    blob = bytearray(fragments.make_fragments(np.ones((2, 50_000), np.uint8), params, chunk_size=8192)[2])
    store.put("ds/obj/4/2", blob)
    assert store.verify("ds/obj/4/2") == []
    blob[fragment_format.PAYLOAD_OFFSET + 3 * 8192 + 5] ^= 1
    store.put("ds/obj/4/2", blob)
    store.reset_stats()
    assert store.verify("ds/obj/4/2") == [3]
    if not isinstance(store, LocalDirStore):
        assert store.stats()["bytes_fetched"] == 0
    with pytest.raises(fragment_format.FragmentError):
        store.verify("ds/obj/2/0")  # "small" is not a fragment
    # verified range reads: served when the touched chunks are intact, refused otherwise
    at = fragment_format.PAYLOAD_OFFSET
    assert store.get_ranges("ds/obj/4/2", [(at, at + 10), (at + 8192, at + 8200)], verify=True) == [
        bytes(blob[at:at + 10]), bytes(blob[at + 8192:at + 8200])]
    with pytest.raises(CorruptFragment) as info:
        store.get_ranges("ds/obj/4/2", [(at, at + 10), (at + 3 * 8192 + 100, at + 3 * 8192 + 101)],
                         verify=True)
    assert info.value.bad_chunks == [3]
    assert store.get_ranges("ds/obj/4/2", [(at + 3 * 8192 + 5, at + 3 * 8192 + 6)]) == [
        bytes(blob[at + 3 * 8192 + 5:at + 3 * 8192 + 6])]  # unverified reads still serve bytes
    with pytest.raises(CorruptFragment):
        store.get_ranges("ds/obj/2/0", [(0, 2)], verify=True)
    store.delete("ds/obj/2/0")
    assert not store.exists("ds/obj/2/0")
    with pytest.raises(KeyNotFound):
        store.delete("ds/obj/2/0")


def test_local_dir_down(tmp_path: Path) -> None:
    s = LocalDirStore(tmp_path / "gone")
    s.put("a/b", b"x")
    (tmp_path / "gone" / "a" / "b").unlink()
    (tmp_path / "gone" / "a").rmdir()
    (tmp_path / "gone").rmdir()
    with pytest.raises(LocationUnavailable):
        s.get_ranges("a/b", [(0, 1)])


def test_open_location_specs(tmp_path: Path) -> None:
    assert isinstance(open_location(f"file://{tmp_path}"), LocalDirStore)
    assert isinstance(open_location(f"dir:{tmp_path}"), LocalDirStore)
    assert isinstance(open_location("http://127.0.0.1:1"), HttpRangeStore)
    with pytest.raises(ValueError, match="session or connect"):
        open_location("zenoh:x")
    with pytest.raises(ValueError, match="unknown scheme 's3'"):
        open_location("s3://bucket/x")


# ---- RFC 7233 parsing ----------------------------------------------------------------------------
@pytest.mark.parametrize("header,want", [
    ("bytes=0-50", [(0, 51)]),
    ("bytes=0-50, 100-150", [(0, 51), (100, 151)]),
    ("bytes=-500", [(500, 1000)]),
    ("bytes=-5000", [(0, 1000)]),
    ("bytes=900-", [(900, 1000)]),
    ("bytes=990-5000", [(990, 1000)]),
    ("BYTES = 1-2 ,3-4", [(1, 3), (3, 5)]),
    ("bytes=0-9,5-14", [(0, 10), (5, 15)]),  # overlapping: served as asked, not coalesced
    ("bytes=0-9,2000-3000", [(0, 10)]),  # the unsatisfiable spec is dropped
])
def test_parse_range_header(header: str, want: list[tuple[int, int]]) -> None:
    assert rangewire.parse_range_header(header, 1000) == want


@pytest.mark.parametrize("header", ["bytes 0-5", "items=0-5", "bytes=5-1", "bytes=a-b", "bytes=-",
                                    "bytes=", "bytes=0-5,,"])
def test_malformed_range_header(header: str) -> None:
    with pytest.raises(rangewire.MalformedRange):
        rangewire.parse_range_header(header, 1000)


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=2000-3000,5000-",
                                    "bytes=" + ",".join(["0-999"] * 70)])
def test_unsatisfiable_range_header(header: str) -> None:
    with pytest.raises(rangewire.UnsatisfiableRange):
        rangewire.parse_range_header(header, 1000)


def test_compact_format_roundtrip_and_checksum() -> None:
    body = rangewire.pack_compact([(0, 3), (10, 12)], [b"abc", b"xy"])
    assert rangewire.unpack_compact(body) == [(0, b"abc"), (10, b"xy")]
    broken = bytearray(body)
    broken[-6] ^= 1
    with pytest.raises(rangewire.CorruptResponse, match="checksum"):
        rangewire.unpack_compact(bytes(broken))


# ---- the HTTP range server as a process ----------------------------------------------------------
def _raw(url: str, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> http.client.HTTPResponse:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    resp.body = resp.read()  # type: ignore[attr-defined]
    conn.close()
    return resp


@pytest.mark.timeout(60)
def test_http_range_server_protocol(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "f").write_bytes(DATA)
    with http_server(tmp_path) as (_proc, url):
        r = _raw(url, "GET", "/ds/f", {"Range": "bytes=0-50, 100-150"})
        assert r.status == 206 and r.getheader("Content-Type").startswith("multipart/byteranges")
        parts = rangewire.parse_multipart(r.getheader("Content-Type"), r.body)
        assert parts == [(0, DATA[0:51]), (100, DATA[100:151])]
        r = _raw(url, "GET", "/ds/f", {"Range": "bytes=-500"})
        assert r.status == 206 and r.body == DATA[-500:]
        assert r.getheader("Content-Range") == f"bytes {len(DATA) - 500}-{len(DATA) - 1}/{len(DATA)}"
        r = _raw(url, "GET", "/ds/f", {"Range": "bytes=199000-"})
        assert r.status == 206 and r.body == DATA[199_000:]
        r = _raw(url, "GET", "/ds/f", {"Range": "bytes=0-9,5-14", "Accept": rangewire.COMPACT_TYPE})
        assert r.status == 206 and rangewire.unpack_compact(r.body) == [(0, DATA[:10]), (5, DATA[5:15])]
        r = _raw(url, "GET", "/ds/f", {"Range": "bytes=9-5"})
        assert r.status == 400 and b"before first" in r.body
        r = _raw(url, "GET", "/ds/f", {"Range": "lines=1-2"})
        assert r.status == 400
        r = _raw(url, "GET", "/ds/f", {"Range": "bytes=300000-"})
        assert r.status == 416 and r.getheader("Content-Range") == f"bytes */{len(DATA)}"
        r = _raw(url, "GET", "/ds/missing", {"Range": "bytes=0-1"})
        assert r.status == 404
        r = _raw(url, "GET", "/ds/f")
        assert r.status == 200 and r.body == DATA
        r = _raw(url, "HEAD", "/ds/f")
        assert r.status == 200 and int(r.getheader("Content-Length")) == len(DATA) and r.body == b""
        r = _raw(url, "POST", "/ds/f", body=rangewire.pack_range_list([(5, 9), (0, 2)]))
        assert r.status == 206 and rangewire.unpack_compact(r.body) == [(5, DATA[5:9]), (0, DATA[:2])]
        r = _raw(url, "POST", "/ds/f", body=b"short")
        assert r.status == 400
        r = _raw(url, "POST", "/ds/f", body=rangewire.pack_range_list([(0, len(DATA) + 1)]))
        assert r.status == 416
        r = _raw(url, "GET", "/../etc/passwd")
        assert r.status in (400, 404)


@pytest.mark.timeout(60)
def test_http_compact_and_multipart_agree(tmp_path: Path) -> None:
    with http_server(tmp_path) as (_proc, url):
        compact, multipart = HttpRangeStore(url), HttpRangeStore(url, compact=False)
        compact.put("x/y", DATA)
        rng = np.random.default_rng(0)
        starts = rng.integers(0, len(DATA) - 1000, 50)
        ranges = [(int(s), int(s) + int(n)) for s, n in zip(starts, rng.integers(1, 1000, 50), strict=True)]
        a = compact.get_ranges("x/y", ranges)
        b = multipart.get_ranges("x/y", ranges)
        assert a == b == [DATA[s:e] for s, e in ranges]
        assert multipart.get_ranges("x/y", [(3, 9)]) == [DATA[3:9]]  # single-range 206 body
        assert compact.stats()["requests"] == 2 and multipart.stats()["requests"] == 2
        # more ranges than fit in a header: one POSTed range list (compact), or header-sized GETs
        many = [(i * 19, i * 19 + 5) for i in range(10_000)]
        want = [DATA[s:e] for s, e in many]
        compact.reset_stats()
        assert compact.get_ranges("x/y", many) == want
        assert compact.stats()["requests"] == 1
        assert multipart.get_ranges("x/y", many) == want
        # one store shared by threads (the query layer fetches locations in parallel)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda r: compact.get_ranges("x/y", [r]), ranges))
        assert results == [[DATA[s:e]] for s, e in ranges]
        compact.close()
        multipart.close()


@pytest.mark.timeout(60)
def test_http_location_down(tmp_path: Path) -> None:
    with http_server(tmp_path) as (proc, url):
        s = HttpRangeStore(url, timeout=2)
        s.put("a/b", b"hello")
        assert s.get_ranges("a/b", [(1, 3)]) == [b"el"]
        proc.terminate()
        proc.wait(5)
        with pytest.raises(LocationUnavailable):
            s.get_ranges("a/b", [(1, 3)])
    with pytest.raises(LocationUnavailable):
        HttpRangeStore(f"http://127.0.0.1:{free_port()}", timeout=2).get("a/b")


@pytest.mark.timeout(60)
def test_zenoh_location_down(router, tmp_path: Path) -> None:
    with zenoh_location(tmp_path, "gone", router.endpoint) as proc:
        s = open_location("zenoh:gone", connect=[router.endpoint], timeout=10)  # generous: loaded CI
        try:
            s.put("a/b", b"hello")
            many = [(i % 5, i % 5 + 1) for i in range(400)]  # > 256 ranges travel in the payload
            assert s.get_ranges("a/b", many) == [b"hello"[a:b] for a, b in many]
            proc.terminate()
            proc.wait(5)
            with pytest.raises(LocationUnavailable):
                s.get("a/b")
        finally:
            s.close()


# ---- coded object over three kinds of locations, degraded range reads ----------------------------
@pytest.mark.timeout(90)
def test_degraded_reads_across_locations(router, tmp_path: Path) -> None:
    import shutil

    params = rlnc.CodingParams(3, 5, seed=4)
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, (3, 100_000), dtype=np.uint8)
    blobs = fragments.make_fragments(data, params, chunk_size=16384)
    with http_server(tmp_path / "h1") as (p1, url1), http_server(tmp_path / "h2") as (p2, url2), \
            zenoh_location(tmp_path / "z1", "z1", router.endpoint) as z1:
        locs: list[FragmentStore] = [
            LocalDirStore(tmp_path / "d1"), HttpRangeStore(url1, timeout=10),
            HttpRangeStore(url2, timeout=10),
            open_location("zenoh:z1", connect=[router.endpoint], timeout=10),
            LocalDirStore(tmp_path / "d2"),
        ]
        stop = {1: p1, 2: p2, 3: z1}
        try:
            where = placement.place("obj-1", 5, [s.name for s in locs])
            for i, blob in enumerate(blobs):
                locs[where[i]].put(f"ds/obj/1/{i}", blob)
            for idx in (where[0], where[2]):  # n - k = 2 locations down, holding data fragments
                if idx in stop:
                    stop[idx].terminate()
                    stop[idx].wait(5)
                else:
                    shutil.rmtree(locs[idx].root)  # type: ignore[attr-defined]
            a, b = 12_345, 23_456
            span = (fragment_format.PAYLOAD_OFFSET + a, fragment_format.PAYLOAD_OFFSET + b)
            avail = {}
            for i in range(5):
                try:
                    avail[i] = locs[where[i]].get_ranges(f"ds/obj/1/{i}", [span])[0]
                except LocationUnavailable:
                    continue
            assert sorted(avail) == [1, 3, 4]
            got = rlnc.decode_ranges(avail, params, want=[0, 1, 2])
            for j in range(3):
                assert bytes(got[j]) == data[j][a:b].tobytes()
        finally:
            for s in locs:
                s.close()


def test_location_keys() -> None:
    from zflow import keyexprs
    from zflow.errors import UserError

    assert keyexprs.tsdb_fragment("site-a", "ds/obj/3/0") == "zflow/tsdb/_loc/site-a/f/ds/obj/3/0"
    with pytest.raises(UserError, match="reserved"):
        keyexprs.tsdb("_loc", "query")
    with pytest.raises(UserError):
        keyexprs.tsdb_location("@admin")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda size: st.tuples(
    st.just(size),
    st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 300)), min_size=1, max_size=20))))
def test_range_header_roundtrip(case) -> None:
    size, specs = case
    ranges = [(a, min(size, a + n)) for a, n in specs]
    if sum(b - a for a, b in ranges) > 2 * size + 65536:
        return
    assert rangewire.parse_range_header(rangewire.format_range_header(ranges), size) == ranges
    assert rangewire.unpack_range_list(rangewire.pack_range_list(ranges), size) == ranges
    datas = [bytes(range(b - a)) if b - a < 256 else b"x" * (b - a) for a, b in ranges]
    body = rangewire.pack_compact(ranges, datas)
    assert rangewire.unpack_compact(body) == [(a, d) for (a, _b), d in zip(ranges, datas, strict=True)]
    ctype, mp = rangewire.build_multipart(ranges, datas, size)
    assert rangewire.parse_multipart(ctype, mp) == [(a, d) for (a, _b), d in zip(ranges, datas, strict=True)]


# ---- vectorised range reads (get_ranges_concat) ------------------------------------------------
def _range_cases(size: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    starts = rng.integers(0, size, 3000)
    ends = np.minimum(starts + rng.integers(0, 300, 3000), size)
    sorted_s = np.sort(starts)
    return {
        "random": (starts, ends),
        "sorted dense": (sorted_s, np.minimum(sorted_s + 3, size)),
        "overlapping, repeated, reversed": (np.concatenate([starts[:500], starts[:500][::-1], [10, 10, 5]]),
                                            np.concatenate([ends[:500], ends[:500][::-1], [900, 900, 2000]])),
        "empty among others": (np.array([0, 7, 7, size, 100, size - 1]), np.array([0, 7, 19, size, 100, size])),
        "all empty": (np.array([3, size]), np.array([3, size])),
        "none": (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)),
        "boundaries": (np.array([0, size - 1, 0, size // 2]), np.array([1, size, size, size // 2 + 1])),
        "few long": (np.array([0, 70_000, 150_000]), np.array([60_000, 140_000, size])),
    }


@pytest.mark.timeout(90)
def test_get_ranges_concat_equals_per_range_reads(store: FragmentStore) -> None:
    store.put("ds/obj/1/0", DATA)
    size = len(DATA)
    for case, (s, e) in _range_cases(size, np.random.default_rng(5)).items():
        data, off = store.get_ranges_concat("ds/obj/1/0", s, e)
        assert len(off) == len(s) + 1 and off[0] == 0 and off[-1] == len(data), case
        want = store.get_ranges("ds/obj/1/0", list(zip(s.tolist(), e.tolist(), strict=True)))
        assert [bytes(data[off[i]:off[i + 1]]) for i in range(len(s))] == want, case
        assert want == [DATA[a:b] for a, b in zip(s.tolist(), e.tolist(), strict=True)], case
    store.reset_stats()
    store.get_ranges_concat("ds/obj/1/0", np.array([0, 10, 50]), np.array([4, 10, 60]))
    assert store.stats()["requests"] == 1 and store.stats()["bytes_fetched"] == 14
    assert store.stats()["ranges"] == 2  # the empty range costs nothing
    for s, e in ([size - 1], [size + 1]), ([-1], [3]), ([5], [3]), ([0, 1], [1]):
        with pytest.raises(RangeNotSatisfiable):
            store.get_ranges_concat("ds/obj/1/0", np.array(s), np.array(e))
    with pytest.raises(KeyNotFound):
        store.get_ranges_concat("ds/obj/9/0", np.array([0]), np.array([1]))
    with pytest.raises(BadKey):
        store.get_ranges_concat("../x", np.array([0]), np.array([1]))


@pytest.mark.timeout(90)
def test_verified_concat_reads_refuse_corrupt_chunks(store: FragmentStore) -> None:
    payload = np.frombuffer(DATA[:4 * 30_000], dtype=np.uint8).reshape(4, -1)
    blob = bytearray(fragments.make_fragments(payload, rlnc.CodingParams(4, 6, 7), chunk_size=4096)[1])
    at = fragment_format.PAYLOAD_OFFSET
    blob[at + 3 * 4096 + 17] ^= 0xFF  # chunk 3
    store.put("ds/obj/4/1", bytes(blob))
    s = np.array([at + 10, at + 5 * 4096, at + 2 * 4096 + 4000])
    e = s + np.array([100, 5000, 96])  # chunks 0, 5-6, 2: all intact
    for reps in (1, 20):  # a few ranges (plain path) and many (vectorised path)
        rs, re_ = np.tile(s, reps), np.tile(e, reps)
        data, _off = store.get_ranges_concat("ds/obj/4/1", rs, re_, verify=True)
        assert data.tobytes() == b"".join(bytes(blob[a:b]) for a, b in zip(rs, re_, strict=True))
        with pytest.raises(CorruptFragment) as exc:
            store.get_ranges_concat("ds/obj/4/1", np.tile([at, at + 3 * 4096 + 4095], reps),
                                    np.tile([at + 5, at + 3 * 4096 + 4097], reps), verify=True)
        assert exc.value.bad_chunks == [3]
    store.put("ds/obj/4/2", b"not a fragment at all" * 40)
    with pytest.raises(CorruptFragment):
        store.get_ranges_concat("ds/obj/4/2", np.array([600]), np.array([610]), verify=True)


def test_concat_over_a_plain_rfc7233_client(tmp_path: Path) -> None:
    """A client that cannot assume the zflow server (no compact body) still answers concat reads."""
    from storage_backends.http_range_server import serve_in_thread

    server, url = serve_in_thread(str(tmp_path / "d"))
    try:
        with HttpRangeStore(url, compact=False) as plain, HttpRangeStore(url) as compact:
            compact.put("x/y", DATA)
            for case, (s, e) in _range_cases(len(DATA), np.random.default_rng(6)).items():
                a, off_a = plain.get_ranges_concat("x/y", s, e)
                b, off_b = compact.get_ranges_concat("x/y", s, e)
                assert np.array_equal(a, b) and np.array_equal(off_a, off_b), case
    finally:
        server.shutdown()
        server.server_close()


def test_vectorised_wire_formats_match_the_per_range_ones() -> None:
    rng = np.random.default_rng(2)
    s = rng.integers(0, 1000, 50)
    e = s + rng.integers(0, 20, 50)
    ranges = list(zip(s.tolist(), e.tolist(), strict=True))
    body = rangewire.pack_range_array(s, e)
    assert body == rangewire.pack_range_list(ranges)
    a, b = rangewire.unpack_range_array(body, 1100)
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == rangewire.unpack_range_list(body, 1100)
    datas = [DATA[x:y] for x, y in ranges]
    packed = rangewire.pack_compact_array(s, e, b"".join(datas))
    assert packed == rangewire.pack_compact(ranges, datas)
    offs, lens, data = rangewire.unpack_compact_array(packed)
    assert np.array_equal(offs, s) and np.array_equal(lens, e - s) and data.tobytes() == b"".join(datas)
    for bad, size, err in [(body[:-3], 1100, rangewire.MalformedRange), (b"", 1100, rangewire.MalformedRange),
                           (rangewire.pack_range_list([(5, 3)]), 1100, rangewire.MalformedRange),
                           (rangewire.pack_range_list([(0, 1101)]), 1100, rangewire.UnsatisfiableRange),
                           (rangewire.pack_range_list([(2**64 - 2, 2**64 - 1)]), 1100, rangewire.UnsatisfiableRange),
                           (rangewire.pack_range_list([(0, 1000)] * 70), 1000, rangewire.UnsatisfiableRange)]:
        with pytest.raises(err):
            rangewire.unpack_range_array(bad, size)
    flipped = bytearray(packed)
    flipped[30] ^= 1
    with pytest.raises(rangewire.CorruptResponse):
        rangewire.unpack_compact_array(bytes(flipped))
    with pytest.raises(rangewire.CorruptResponse):
        rangewire.unpack_compact_array(packed[:6])
