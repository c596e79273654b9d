"""The Zenoh storage front: ingest by put, query by a plain zenoh-python get."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import wait_for

from zflow import codec, keyexprs
from zflow.transport import open_session
from zflow.tsdb import synth
from zflow.tsdb.front import Front
from zflow.tsdb.store import Dataset


def _get(session, selector: str, timeout: float = 10.0) -> list:
    return list(session.get(selector, timeout=timeout))


def _ok(session, selector: str):
    rs = _get(session, selector, timeout=5.0)
    return rs[0].ok if rs and rs[0].ok is not None else None


@pytest.mark.timeout(150)
def test_front_ingest_put_and_plain_get(router, zsession, tmp_path: Path) -> None:
    schema = synth.schema("intel", k=2, n=3, target_object_bytes=20_000)
    locs = [f"file://{tmp_path}/l{i}" for i in range(3)]
    ds = Dataset.create(schema, locs)
    data = synth.generate(3000, seed=1)
    with open_session(router.client_options()) as fs, Front(ds, fs) as front:
        # The front declares its subscriber, then its queryables, on one session: once the last
        # queryable answers through the router, the subscriber has reached it too.
        wait_for(lambda: _ok(zsession, keyexprs.tsdb("intel", "stats")), "the front's declarations")
        payload, ctype = codec.encode({k: v for k, v in data.items()})
        zsession.put(keyexprs.tsdb("intel", "ingest"), payload, encoding=ctype)
        rows = [{k: data[k][i].item() for k in data} for i in range(5)]
        zsession.put(keyexprs.tsdb("intel", "ingest"), json.dumps(rows).encode(), encoding=codec.JSON)
        zsession.put(keyexprs.tsdb("intel", "flush"), b"")
        full = {k: np.concatenate([v, v[:5]]) for k, v in data.items()}
        sel = keyexprs.tsdb("intel", "query") + "?filter=temperature>21;moteid=7|light>600&cols=time,temperature,moteid"
        count = keyexprs.tsdb("intel", "query") + "?cols=moteid"

        def rows_stored() -> bool:  # puts are applied asynchronously by the front's worker
            ok = _ok(zsession, count)
            assert not front.errors, front.errors
            return ok is not None and len(
                codec.decode(ok.payload.to_bytes(), str(ok.encoding))["columns"]["moteid"]) == 3005

        # the first ingest may compile numba kernels, slow on a loaded machine
        wait_for(rows_stored, "3005 ingested rows", timeout=90)
        replies = _get(zsession, sel)
        value = codec.decode(replies[0].ok.payload.to_bytes(), str(replies[0].ok.encoding))
        mask = ((full["temperature"] > 21) & (full["moteid"] == 7)) | (full["light"] > 600)
        assert len(value["columns"]["time"]) == mask.sum() > 0
        assert np.array_equal(value["columns"]["temperature"], full["temperature"][mask])
        assert value["report"]["bytes_fetched"] > 0
        # JSON form, Zenoh-style ';' parameter separators
        sel = keyexprs.tsdb("intel", "query") + "?filter=moteid=3;cols=moteid,voltage;limit=4;format=json"
        r = _get(zsession, sel)[0]
        assert str(r.ok.encoding).startswith(codec.JSON)
        out = json.loads(r.ok.payload.to_bytes())
        assert out["columns"]["moteid"] == [3, 3, 3, 3]
        st = json.loads(_get(zsession, keyexprs.tsdb("intel", "stats"))[0].ok.payload.to_bytes())
        assert st["rows"] == 3005 and st["compression_ratio"] > 1
        # a bad selector gets an error reply that says what is wrong
        r = _get(zsession, keyexprs.tsdb("intel", "query") + "?filter=temprature>3")[0]
        assert r.ok is None
        assert "did you mean 'temperature'" in r.err.payload.to_bytes().decode()


@pytest.mark.timeout(60)
def test_serve_command_answers_a_raw_zenoh_get(router, zsession, tmp_path: Path, spawn) -> None:
    schema = synth.schema("lab", k=2, n=3, target_object_bytes=20_000)
    locs = [f"file://{tmp_path}/l{i}" for i in range(3)]
    (tmp_path / "lab.json").write_text(schema.to_json())
    (tmp_path / "ds.yaml").write_text(f"schema: lab.json\nlocations: {json.dumps(locs)}\n")
    data = synth.generate(2000, seed=2)
    with Dataset.create(schema, locs) as ds:
        ds.ingest(data)
        ds.flush()
    with spawn(["-m", "zflow", "tsdb", "serve", str(tmp_path / "ds.yaml"), "--connect", router.endpoint],
               "serving dataset 'lab'") as (proc, _line):
        sel = keyexprs.tsdb("lab", "query") + "?filter=light>100;voltage<2.7&cols=time,light&format=json"
        value = json.loads(wait_for(lambda: _ok(zsession, sel), "the served dataset").payload.to_bytes())
        mask = (data["light"] > 100) & (data["voltage"] < 2.7)
        assert value["columns"]["light"] == data["light"][mask].tolist()
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM: the front flushes and closes its session


@pytest.mark.timeout(60)
def test_mixed_locations_dir_http_zenoh(router, zsession, tmp_path: Path) -> None:
    """One dataset over a directory, an HTTP range server and a Zenoh location (URIs from a
    config); any one of them down, queries stay exact; the catalog loads from the others."""
    from storage_backends.zenoh_location import LocationServer
    from zflow.tsdb.range_server import serve_in_thread
    from zflow.tsdb.store import load_config

    server, url = serve_in_thread(str(tmp_path / "http"))
    try:
        with LocationServer(zsession, "zloc", str(tmp_path / "zdir")):
            cfg = tmp_path / "ds.yaml"
            schema = synth.schema("mixed", k=2, n=3, target_object_bytes=30_000)
            (tmp_path / "mixed.json").write_text(schema.to_json())
            cfg.write_text(f"schema: mixed.json\nlocations: [file://{tmp_path}/dir, {url}, zenoh:zloc]\n"
                           f"zenoh: {{connect: [{router.endpoint}]}}\n")
            assert load_config(cfg)[1][2] == "zenoh:zloc"
            data = synth.generate(4000, seed=9)
            with Dataset.from_config(cfg, create=True) as ds:
                ds.ingest(data)
                ds.flush()
                assert {n: b > 0 for n, b in ds.stats()["per_location_bytes"].items()} == {
                    f"file://{tmp_path}/dir": True, url: True, "zenoh:zloc": True}
            sel = "filter=humidity<35|moteid=9;light>=50&cols=time,humidity,moteid"
            mask = (data["humidity"] < 35) | ((data["moteid"] == 9) & (data["light"] >= 50))
            with Dataset.from_config(cfg) as ds:
                res = ds.query(sel)
                assert np.array_equal(res.columns["time"], data["time"][mask])
                assert res.report["per_location"]["zenoh:zloc"]["requests"] > 0 or \
                    res.report["per_location"][url]["requests"] > 0
            (tmp_path / "dir").rename(tmp_path / "gone")  # the directory location is lost
            with Dataset.from_config(cfg) as ds:
                res = ds.query(sel)
                assert np.array_equal(res.columns["humidity"], data["humidity"][mask])
            shutil.rmtree(tmp_path / "dir")
            (tmp_path / "gone").rename(tmp_path / "dir")
            server.shutdown()  # now the HTTP location is down
            server.server_close()
            with Dataset.from_config(cfg) as ds:
                res = ds.query(sel)
                assert np.array_equal(res.columns["moteid"], data["moteid"][mask])
                full = ds.query()  # reads every data fragment
                assert np.array_equal(full.columns["voltage"], data["voltage"])
                http_holds_data = any(1 in m.placement[:2] for m in ds.catalog.objects.values())
                assert (url in full.report["locations_down"]) == http_holds_data
    finally:
        server.shutdown()
        server.server_close()
