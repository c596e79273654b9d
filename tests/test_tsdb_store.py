"""The store end to end on local-directory locations: round trips for every type, queries
against a numpy evaluation, losing any n-k locations, catalog survival, repair, bad input."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from zflow.errors import UserError
from zflow.tsdb.dataset import Dataset
from zflow.tsdb.dedup import generalized as dedup
from zflow.tsdb.layout import bitpack, ordkeys
from zflow.tsdb.layout import object_layout as layout
from zflow.tsdb.schema import Schema, parse_schema

TYPES = ["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64"]


def _values(t: str, n: int, rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype({"u": "uint", "i": "int", "f": "float"}[t[0]] + t[1:])
    if t[0] == "f":
        v = rng.normal(0, 100, n).astype(dt)
        v[:4] = [0.0, -0.0, np.inf, -np.inf]
        return v
    info = np.iinfo(dt)
    v = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    v[: n // 2] = rng.integers(max(info.min, -50), 50, n // 2).astype(dt)  # low-entropy half for dedup
    v[:2] = [info.min, info.max]
    return v


def _schema(dedup_on: bool, k: int = 3, n: int = 5, target: int = 6000) -> Schema:
    cols = [{"name": f"c_{t}", "type": t, "dedup": dedup_on} for t in TYPES]
    cols.append({"name": "temp", "type": "i16", "scale": 2, "dedup": dedup_on})
    cols.append({"name": "time", "type": "i64"})
    return Schema.model_validate({"name": "rt", "columns": cols, "time_column": "time",
                                  "coding": {"k": k, "n": n}, "target_object_bytes": target})


def _data(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = {f"c_{t}": _values(t, n, rng) for t in TYPES}
    d["temp"] = np.round(rng.normal(21, 6, n), 2)
    d["time"] = 1_000_000 + np.arange(n) * 10
    return d


def _locs(tmp: Path, n: int) -> list[str]:
    return [f"file://{tmp}/loc{i}" for i in range(n)]


@pytest.mark.parametrize("dedup_on", [True, False])
def test_round_trip_every_type(tmp_path: Path, dedup_on: bool) -> None:
    data = _data(1500)
    ds = Dataset.create(_schema(dedup_on), _locs(tmp_path, 5))
    ds.ingest(data)
    ds.flush()
    assert len(ds.catalog.objects) > 1
    res = Dataset.open("rt", _locs(tmp_path, 5)).query()
    for name, v in data.items():
        got = res.columns[name]
        assert got.dtype == ds.schema.column(name).logical_dtype
        assert np.array_equal(got, v.astype(got.dtype), equal_nan=True), name
    if dedup_on:
        assert ds.stats()["compression_ratio"] > 1.0


def test_bitpack_and_dedup_are_lossless() -> None:
    rng = np.random.default_rng(0)
    for bits in (1, 5, 8, 13, 16, 31, 40, 64):
        hi = 2**bits - 1 if bits < 64 else 2**64 - 1
        v = rng.integers(0, hi, 777, dtype=np.uint64, endpoint=True)
        assert np.array_equal(bitpack.unpack(bitpack.pack(v, bits), 777, bits), v)
    keys = (rng.normal(5000, 200, 5000)).astype(np.uint64)
    sp = dedup.choose_split(keys, 16)
    ids, dev = dedup.split_keys(keys, sp)
    assert np.array_equal(dedup.join_keys(ids, dev, sp.bases, sp.dev_bits), keys)
    assert sp.total_bits < 16 * len(keys)


def test_layout_never_straddles_fragments() -> None:
    specs = [("a.base", 11), ("a.dev", 7), ("b.base", 0), ("b.dev", 33), ("c.dev", 64)]
    lay = layout.plan_layout(specs, 1001, 4)
    for name, bits in specs:
        sc = lay.subcolumns[name]
        for row in range(0, 1001, 37) if bits else []:
            first_bit = None
            for row0, rows, off in sc.segments:
                if row0 <= row < row0 + rows:
                    first_bit = off * 8 + (row - row0) * bits
            assert first_bit is not None
            last = (first_bit + bits - 1) // 8
            assert first_bit // 8 // lay.frag_size == last // lay.frag_size


def _numpy_eval(data: dict[str, np.ndarray], where: list[list[tuple[str, str, float]]]) -> np.ndarray:
    ops = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
           ">": np.greater, ">=": np.greater_equal}
    n = len(next(iter(data.values())))
    out = np.zeros(n, dtype=bool)
    for conj in where:
        m = np.ones(n, dtype=bool)
        for c, op, v in conj:
            m &= ops[op](data[c], v)
        out |= m
    return out


QUERIES = [
    ("filter=temp>25&cols=time,temp,c_i32", [[("temp", ">", 25)]]),
    ("filter=temp>=20;temp<22.5&cols=c_f32", [[("temp", ">=", 20), ("temp", "<", 22.5)]]),
    ("filter=c_i8=3|c_u16<40;temp!=21.5", [[("c_i8", "=", 3)], [("c_u16", "<", 40), ("temp", "!=", 21.5)]]),
    ("filter=c_f64=-50..50&cols=time,c_f64", [[("c_f64", ">=", -50), ("c_f64", "<=", 50)]]),
    ("filter=time=1005000..1009990&cols=time,c_u64", [[("time", ">=", 1005000), ("time", "<=", 1009990)]]),
    ("filter=c_u8>200", [[("c_u8", ">", 200)]]),
]


def _check_queries(ds: Dataset, data: dict[str, np.ndarray]) -> None:
    for sel, where in QUERIES:
        res = ds.query(sel)
        mask = _numpy_eval(data, where)
        assert res.report["rows"] == int(mask.sum()), sel
        for c, v in res.columns.items():
            assert np.array_equal(v, data[c][mask].astype(v.dtype), equal_nan=True), (sel, c)


def test_queries_match_numpy_and_fetch_less(tmp_path: Path) -> None:
    data = _data(3000)
    ds = Dataset.create(_schema(True, target=20000), _locs(tmp_path, 5))
    ds.ingest(data)
    ds.flush()
    _check_queries(ds, data)
    res = ds.query("filter=time=1005000..1009990&cols=time")
    naive = ds.query("filter=time=1005000..1009990&cols=time", naive=True)
    assert np.array_equal(res.columns["time"], naive.columns["time"])
    assert res.report["bytes_fetched"] < naive.report["bytes_fetched"]
    assert res.report["objects_scanned"] < res.report["objects"]  # min/max pruning
    lim = ds.query("filter=temp>25&cols=time", limit=7)
    assert np.array_equal(lim.columns["time"], data["time"][data["temp"] > 25][:7])
    assert lim.report["objects_scanned"] < res.report["objects"]  # stopped once 7 rows matched
    for n in (0, 1, 300, 10_000):
        lim = ds.query("filter=temp>25|c_i8<0&cols=temp", limit=n)
        assert np.array_equal(lim.columns["temp"], data["temp"][(data["temp"] > 25) | (data["c_i8"] < 0)][:n])


def test_any_n_minus_k_locations_down(tmp_path: Path) -> None:
    data = _data(1200)
    locs = _locs(tmp_path, 5)
    ds = Dataset.create(_schema(True, k=3, n=5, target=8000), locs)
    ds.ingest(data)
    ds.flush()
    for down in itertools.combinations(range(5), 2):
        moved = []
        for i in down:
            src = tmp_path / f"loc{i}"
            src.rename(tmp_path / f"gone{i}")
            moved.append(i)
        try:
            live = Dataset.open("rt", locs)  # catalog from the 3 surviving locations
            _check_queries(live, data)
            assert live.query("filter=temp>25").report["degraded_ranges"] > 0
        finally:
            for i in moved:
                (tmp_path / f"gone{i}").rename(tmp_path / f"loc{i}")


def test_open_with_reordered_locations(tmp_path: Path) -> None:
    data = _data(600)
    locs = _locs(tmp_path, 5)
    ds = Dataset.create(_schema(True, target=8000), locs)
    ds.ingest(data)
    ds.flush()
    res = Dataset.open("rt", locs[::-1]).query("filter=temp>20")
    assert np.array_equal(res.columns["c_u32"], data["c_u32"][data["temp"] > 20])
    with pytest.raises(UserError) as e:
        Dataset.open("rt", locs[:4])
    assert "created on 5 locations" in e.value.render()


def test_repair_and_verify(tmp_path: Path) -> None:
    data = _data(900)
    locs = _locs(tmp_path, 5)
    ds = Dataset.create(_schema(True, target=8000), locs)
    ds.ingest(data)
    ds.flush()
    shutil.rmtree(tmp_path / "loc1")
    (tmp_path / "loc1").mkdir()
    # corrupt one chunk of one fragment elsewhere
    frag = sorted((tmp_path / "loc3").rglob("obj/*/*"))[0]
    raw = bytearray(frag.read_bytes())
    raw[600] ^= 0xFF
    frag.write_bytes(bytes(raw))
    ds = Dataset.open("rt", locs)
    rep = ds.verify()
    assert rep["missing"] and rep["corrupt"]
    fixed = ds.repair()
    assert fixed["rebuilt"] and fixed["chunks_repaired"] and fixed["catalog_entries"] > 0
    after = ds.verify()
    assert after["ok"] == after["fragments"]
    # the rebuilt location alone (with k-1 others) now serves: drop two other locations
    for i in (0, 2):
        shutil.rmtree(tmp_path / f"loc{i}")
    _check_queries(Dataset.open("rt", locs), data)


def test_bad_schemas_get_located_errors(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\ncolumns:\n  - {name: a, type: i17}\n  - {name: b, type: f32, scale: 2}\n"
                   "time_column: tme\ncodingg: {k: 2}\n")
    from zflow.tsdb.schema import load_schema

    with pytest.raises(UserError) as e:
        load_schema(bad)
    text = e.value.render()
    assert "s.yaml:3" in text and "columns[0].type" in text
    assert "did you mean 'coding'" in text
    with pytest.raises(UserError) as e:
        parse_schema('{"name": "x", "columns": [{"name": "a", "type": "u8"}], "time_column": "aa"}')
    assert "did you mean 'a'" in e.value.render()
    with pytest.raises(UserError) as e:
        parse_schema('{"name": "x", "columns": [{"name": "a", "type": "u8"}], "coding": {"k": 5, "n": 3}}')
    assert "at least k" in e.value.render()


@pytest.mark.parametrize(("selector", "needle"), [
    ("filter=tmp>3", "did you mean 'temp'"),
    ("filter=temp=>3", "bad operator"),
    ("filter=temp~3", "bad operator"),
    ("filter=>3", "bad predicate"),
    ("filter=temp>abc", "bad value 'abc'"),
    ("cols=time,tempp", "did you mean 'temp'"),
    ("limit=-1", "bad limit"),
    ("format=xml", "bad format"),
    ("fliter=temp>3", "did you mean 'filter'"),
    ("time=5", "bad time range"),
])
def test_bad_selectors(tmp_path: Path, selector: str, needle: str) -> None:
    ds = Dataset.create(_schema(True), _locs(tmp_path, 5))
    with pytest.raises(UserError) as e:
        ds.query(selector)
    assert needle in e.value.render()


def test_float_predicates_follow_numpy() -> None:
    from zflow.tsdb.schema import Column

    col = Column(name="x", type="f32")
    v = np.array([-1.5, -0.0, 0.0, 0.1, 2.5, np.inf], dtype=np.float32)
    keys = ordkeys.to_keys(v, col)
    for op, fn in (("<", np.less), ("<=", np.less_equal), (">", np.greater), ("=", np.equal)):
        for val in (0.0, 0.1, -1.5):
            assert np.array_equal(ordkeys.in_intervals(keys, ordkeys.interval(col, op, val)), fn(v, val))


def test_seal_by_age_and_jsonl_ingest(tmp_path: Path) -> None:
    import json
    import time

    schema = _schema(True).model_copy(update={"seal_seconds": 0.3, "target_object_bytes": 1 << 20})
    ds = Dataset.create(schema, _locs(tmp_path, 5))
    data = _data(40)
    rows = [{k: v[i].item() for k, v in data.items()} for i in range(40)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert ds.ingest(path) == 40
    assert not ds.catalog.objects  # below the size target: buffered
    deadline = time.monotonic() + 30
    sealed: list = []
    while not sealed and time.monotonic() < deadline:  # a condition, not a fixed sleep
        time.sleep(0.02)
        sealed = ds.ingestor.tick()
    assert len(sealed) == 1  # sealed by age
    res = ds.query("filter=c_i16>=0")
    for c, v in res.columns.items():
        assert np.array_equal(v, data[c][data["c_i16"] >= 0].astype(v.dtype), equal_nan=True), c
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(UserError) as e:
        ds.ingest(bad)
    assert "bad.jsonl:2" in e.value.render()


def test_trend_columns_round_trip_and_decide_time_ranges_from_metadata(tmp_path: Path) -> None:
    from zflow.tsdb.ingest import synth

    data = synth.generate(20_000, seed=5)
    ds = Dataset.create(synth.schema("lab", k=2, n=3, target_object_bytes=60_000), _locs(tmp_path, 3))
    ds.ingest(data)
    ds.flush()
    metas = ds.catalog.sorted_objects()
    assert all(m.columns["time"].trend is not None for m in metas)
    full = ds.query()
    for c in data:
        assert np.allclose(full.columns[c], data[c], rtol=0, atol=1e-9), c
    t = full.columns["time"]
    for lo, hi in ((t[100], t[150]), (t[0] - 5, t[9000]), (t[12345], t[-1] + 1), (t[5] + 0.0005, t[5] + 0.0005)):
        res = ds.query(f"time={lo}..{hi}&cols=time,epoch")
        m = (t >= lo) & (t <= hi)
        assert np.array_equal(res.columns["time"], t[m])
        assert np.array_equal(res.columns["epoch"], full.columns["epoch"][m])
    ep = full.columns["epoch"]
    res = ds.query("filter=epoch>=100;epoch<105|epoch=300&cols=epoch,moteid")
    m = ((ep >= 100) & (ep < 105)) | (ep == 300)
    assert np.array_equal(res.columns["moteid"], full.columns["moteid"][m])
    # a narrow time range reads a few rows' bytes, not the time column of the objects it touches
    res = ds.query(f"time={t[100]}..{t[150]}&cols=moteid")
    time_bytes = sum(m.layout.subcolumns["time.dev"].stream_size for m in metas)
    assert res.report["bytes_fetched"] < time_bytes / len(metas) / 4


def test_verified_reads_detect_and_decode_around_corruption(tmp_path: Path) -> None:
    from storage_backends.fragment_format import PAYLOAD_OFFSET
    from zflow.tsdb.catalog.records import fragment_key

    data = _data(3000)
    locs = _locs(tmp_path, 5)
    schema = _schema(True, target=1 << 20).model_copy(update={"chunk_size": 256})
    ds = Dataset.create(schema, locs)
    ds.ingest(data)
    ds.flush()
    m = ds.catalog.sorted_objects()[0]
    col = next(c for c in ("c_u32", "c_i64", "c_u64") if m.layout.subcolumns[f"{c}.dev"].segments)
    _, _, off = m.layout.subcolumns[f"{col}.dev"].segments[0]
    frag, at = off // m.layout.frag_size, off % m.layout.frag_size
    path = tmp_path / f"loc{m.placement[frag]}" / fragment_key("rt", m.oid, frag)
    raw = bytearray(path.read_bytes())
    raw[PAYLOAD_OFFSET + at] ^= 0x5A  # flip low bits of row 0's deviation
    path.write_bytes(bytes(raw))
    raw_read = ds.query(f"cols={col}&limit=1", checked=False)
    assert raw_read.columns[col][0] != data[col][0]  # an unchecked range read cannot tell
    for how in ({}, {"verify": True}):  # checked at the location (default), end to end
        got = ds.query(f"cols={col}&limit=1", **how)
        assert got.columns[col][0] == data[col][0], how
        assert got.report["corrupt_chunks"] == 1 and got.report["degraded_ranges"] > 0, how
        full = ds.query(**how)
        for c, v in data.items():
            assert np.array_equal(full.columns[c], v.astype(full.columns[c].dtype), equal_nan=True), (c, how)


def test_fetcher_uses_a_vectorised_store_read_when_offered(tmp_path: Path) -> None:
    from storage_backends.local_dir import LocalDirStore

    calls = []

    class Concat(LocalDirStore):
        def get_ranges_concat(self, key: str, starts: np.ndarray, ends: np.ndarray,
                              verify: bool = False) -> tuple[np.ndarray, np.ndarray]:
            calls.append(len(starts))
            return super().get_ranges_concat(key, starts, ends, verify)

    stores = [Concat(str(tmp_path / f"c{i}"), name=f"c{i}") for i in range(5)]
    data = _data(800)
    ds = Dataset.create(_schema(True, target=8000), stores)
    ds.ingest(data)
    ds.flush()
    _check_queries(ds, data)
    assert calls


@pytest.mark.timeout(90)
def test_degraded_reads_ask_k_fragments_in_parallel(tmp_path: Path) -> None:
    """With a location down, the k other fragments are asked at once (a barrier of k parties
    only opens if the k requests are in flight together) and the decoded ranges are exact."""
    import threading

    from storage_backends.fragment_format import PAYLOAD_OFFSET
    from storage_backends.http_range import HttpRangeStore
    from storage_backends.http_range_server import serve_in_thread
    from zflow.tsdb.catalog.records import fragment_key
    from zflow.tsdb.query.fetch import Fetcher

    class Gated(HttpRangeStore):
        gate: threading.Barrier | None = None

        def get_ranges_concat(self, key, starts, ends, verify=False):  # type: ignore[override]
            if self.gate is not None:
                self.gate.wait()
            return super().get_ranges_concat(key, starts, ends, verify)

    servers = [serve_in_thread(str(tmp_path / f"h{i}")) for i in range(5)]
    stores = [Gated(url, name=f"h{i}") for i, (_srv, url) in enumerate(servers)]
    try:
        data = _data(3000)
        ds = Dataset.create(_schema(True, k=3, n=5, target=1 << 20), stores)
        ds.ingest(data)
        ds.flush()
        m = ds.catalog.sorted_objects()[0]
        lost = m.placement[0]
        servers[lost][0].shutdown()
        servers[lost][0].server_close()
        stores[lost].close()  # drop kept-alive connections: their handler threads outlive shutdown()
        blob = (tmp_path / f"h{lost}" / fragment_key("rt", m.oid, 0)).read_bytes()
        size = m.layout.frag_size
        rng = np.random.default_rng(4)
        offs = np.concatenate([[0, size - 7, 100, 100], rng.integers(0, size - 64, 500)])
        lens = np.concatenate([[5, 7, 0, 64], rng.integers(1, 64, 500)])
        gate = threading.Barrier(3, timeout=30)
        for s in stores:
            s.gate = gate
        f = Fetcher(ds)
        got = f._degraded(m, 0, (offs, lens))
        want = b"".join(blob[PAYLOAD_OFFSET + o:PAYLOAD_OFFSET + o + n]
                        for o, n in zip(offs.tolist(), lens.tolist(), strict=True))
        assert got.tobytes() == want
        assert not gate.broken and f.report()["degraded_ranges"] == len(offs)
        for s in stores:
            s.gate = None
        _check_queries(ds, data)  # whole queries through the down location stay exact
        assert ds.query().report["locations_down"] == [f"h{lost}"]
    finally:
        for s in stores:
            s.close()
        for srv, _url in servers:
            srv.shutdown()
            srv.server_close()


def test_trend_states_of_row_runs_match_the_per_row_evaluation() -> None:
    """The interval shortcut for contiguous rows of a rising trend line equals evaluating the
    line on every row (the generic path, taken here for the same rows in reverse order)."""
    from zflow.tsdb.dedup import generalized as dedup

    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(65, 3000))
        slope = float(rng.choice([rng.uniform(0.001, 3), rng.uniform(1, 1000), 0.5]))
        tr = dedup.Trend(slope, int(rng.integers(-50, 50)), int(rng.integers(0, 200)))
        mn = int(rng.integers(0, 1000))
        mx = mn + max(1, int(tr.line(np.array([n - 1]))[0] + tr.umax + rng.integers(-20, 50)))
        r0 = int(rng.integers(0, n - 64))
        rows = np.arange(r0, int(rng.integers(r0 + 65, n + 1)))
        ivs = []
        for _ in range(int(rng.integers(1, 4))):
            a = int(rng.integers(mn - 100, mx + 100))
            ivs.append((a, a + int(rng.integers(0, max(2, (mx - mn) // 2)))))
        fast = dedup.trend_states(rows, tr, mn, mx, ivs)
        assert np.array_equal(fast, dedup.trend_states(rows[::-1], tr, mn, mx, ivs)[::-1]), (tr, ivs)
        order = np.array([0, 2, 1], dtype=np.int8)  # the query's Kleene order
        for r in (rows, rows[::-1]):
            assert np.array_equal(dedup.trend_states(r, tr, mn, mx, ivs, ordered=True),
                                  order[dedup.trend_states(r, tr, mn, mx, ivs)]), (tr, ivs)
