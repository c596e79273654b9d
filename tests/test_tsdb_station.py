"""The real TMY3 station file through inference, the CLI, and HTTP range servers running as
separate processes, with queries checked against a plain numpy evaluation — also with any
n-k servers stopped."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import spawn_python

from zflow.tsdb.dataset import Dataset
from zflow.tsdb.ingest.infer import infer
from zflow.tsdb.ingest.readers import read_csv

ROOT = Path(__file__).resolve().parent.parent
STATION = "tmy3_723170_greensboro.csv"


@pytest.fixture
def station() -> Path:
    for base in (os.environ.get("ZFLOW_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"):
        if base and (Path(base) / STATION).is_file():
            return Path(base) / STATION
    pytest.skip("station file not present")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextlib.contextmanager
def range_servers(dirs: list[Path]) -> Iterator[tuple[list[contextlib.ExitStack], list[str]]]:
    """One HTTP range server process per directory; each entry of the first list stops one."""
    stacks: list[contextlib.ExitStack] = []
    urls = []
    try:
        for d in dirs:
            urls.append(_start(stacks, d, 0))
        yield stacks, urls
    finally:
        for st in stacks:
            st.close()


def _start(stacks: list[contextlib.ExitStack], d: Path, port: int, at: int | None = None) -> str:
    d.mkdir(parents=True, exist_ok=True)
    st = contextlib.ExitStack()
    _, line = st.enter_context(spawn_python(
        ["-m", "storage_backends.http_range_server", "--dir", str(d), "--port", str(port)], "listening on"))
    if at is None:
        stacks.append(st)
    else:
        stacks[at] = st
    return line.split()[-1]


def test_infer_station_schema(station: Path) -> None:
    schema, notes = infer(station, "gso")
    names = schema.names
    assert schema.time_column == "time" and names[0] == "time"
    assert schema.column("dry_bulb").scale == 1 and schema.column("dry_bulb").type == "i16"
    assert schema.column("ghi").type == "u16"
    assert schema.column("totcld_source").codes is not None
    assert any("codes" in n for n in notes)
    cols = next(read_csv(station, schema))
    assert len(cols["time"]) == 8760
    assert cols["time"][0] == 567997200  # 1988-01-01 01:00 UTC


SELECTORS = [
    ("filter=dry_bulb>30&cols=time,dry_bulb,rhum", [[("dry_bulb", ">", 30)]]),
    ("filter=ghi>=500;rhum<40|wspd>10&cols=time,ghi,wspd", [[("ghi", ">=", 500), ("rhum", "<", 40)], [("wspd", ">", 10)]]),
    ("filter=pressure=1000..1010;dew_point!=0", [[("pressure", ">=", 1000), ("pressure", "<=", 1010), ("dew_point", "!=", 0)]]),
    ("filter=dry_bulb<-5&cols=time", [[("dry_bulb", "<", -5)]]),
    ("filter=totcld_source=B&cols=time,totcld", [[("totcld_source", "=", 1)]]),
]


def _expect(data: dict[str, np.ndarray], where) -> np.ndarray:
    ops = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
           ">": np.greater, ">=": np.greater_equal}
    out = np.zeros(len(data["time"]), dtype=bool)
    for conj in where:
        m = np.ones(len(out), dtype=bool)
        for c, op, v in conj:
            m &= ops[op](data[c], v)
        out |= m
    return out


def _check(ds: Dataset, data: dict[str, np.ndarray]) -> None:
    for sel, where in SELECTORS:
        res = ds.query(sel)
        mask = _expect(data, where)
        assert mask.any() and res.report["rows"] == int(mask.sum()), sel
        for c, v in res.columns.items():
            assert np.array_equal(v, data[c][mask].astype(v.dtype)), (sel, c)
    res = ds.query("time=1988-01-01T00:00..1988-01-02&cols=time,dry_bulb")  # ISO dates, UTC
    m = (data["time"] >= 567993600) & (data["time"] <= 568080000)
    assert m.sum() == 24 and np.array_equal(res.columns["dry_bulb"], data["dry_bulb"][m])
    t0 = data["time"][1000]
    res = ds.query(f"time={t0}..{t0 + 86400}&cols=time,ghi", limit=10)
    m = (data["time"] >= t0) & (data["time"] <= t0 + 86400)
    assert np.array_equal(res.columns["ghi"], data["ghi"][m][:10])


@pytest.mark.timeout(120)
def test_station_over_http_range_servers(station: Path, tmp_path: Path) -> None:
    schema, _ = infer(station, "gso", k=3, n=5)
    schema = schema.model_copy(update={"target_object_bytes": 200_000})
    data = next(read_csv(station, schema))
    dirs = [tmp_path / f"srv{i}" for i in range(5)]
    with range_servers(dirs) as (procs, urls):
        ds = Dataset.create(schema, urls)
        ds.ingest(data)
        ds.flush()
        assert len(ds.catalog.objects) >= 3
        _check(ds, data)
        res = ds.query("filter=dry_bulb>30&cols=time,dry_bulb,rhum")
        assert res.report["bytes_fetched"] < ds.query("filter=dry_bulb>30&cols=time,dry_bulb,rhum",
                                                      naive=True).report["bytes_fetched"]
        # every pair is covered on local dirs (test_tsdb_store); here three pairs of real servers
        for down in [(0, 1), (2, 4), (1, 3)]:
            # stop two servers (real processes), query, restart them on the same port
            for i in down:
                procs[i].close()  # terminates the server process
            live = Dataset.open("gso", urls)
            _check(live, data)
            # placement is random per object: the down servers are noticed exactly when they
            # hold a data fragment that a full scan reads
            held = {urls[i] for i in down for m in live.catalog.objects.values() if i in m.placement[:3]}
            assert set(live.query().report["locations_down"]) == held
            for i in down:
                _start(procs, dirs[i], int(urls[i].rsplit(":", 1)[-1]), at=i)


def test_station_cli(station: Path, tmp_path: Path) -> None:
    run = lambda *a: subprocess.run([sys.executable, "-m", "zflow", "tsdb", *a], capture_output=True,  # noqa: E731
                                    text=True, env=_env(), cwd=tmp_path, timeout=60)
    r = run("infer", str(station), "--name", "gso", "-k", "2", "-n", "3", "-o", "gso.json")
    assert r.returncode == 0, r.stderr
    assert "note:" in r.stderr
    locs = [f"file://{tmp_path}/l{i}" for i in range(3)]
    (tmp_path / "ds.yaml").write_text(f"schema: gso.json\nlocations: {json.dumps(locs)}\n")
    assert run("create", "ds.yaml").returncode == 0
    r = run("ingest", "ds.yaml", str(station))
    assert r.returncode == 0 and "8,760 rows" in r.stdout, r.stderr
    r = run("query", "ds.yaml", "filter=dry_bulb>35&cols=time,dry_bulb", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["columns"]["dry_bulb"] and min(out["columns"]["dry_bulb"]) > 35
    r = run("stats", "ds.yaml", "--json")
    st = json.loads(r.stdout)
    assert st["rows"] == 8760 and st["compression_ratio"] > 1.5 and len(st["per_location_bytes"]) == 3
    r = run("query", "ds.yaml", "filter=dry_bulbb>35")
    assert r.returncode == 2 and "did you mean 'dry_bulb'" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.yaml").write_text("schema: gso.json\nlocation: [a]\n")
    r = run("stats", "bad.yaml")
    assert r.returncode == 2 and "bad.yaml:2" in r.stderr and "did you mean 'locations'" in r.stderr
    (tmp_path / "bad2.yaml").write_text("schema: gso.json\nlocations:\n  - file:///tmp/x\n  - s3://bucket\n")
    r = run("stats", "bad2.yaml")
    assert r.returncode == 2 and "bad2.yaml:4" in r.stderr and "locations[1]" in r.stderr, r.stderr
    assert run("verify", "ds.yaml").returncode == 0
    r = run("json-schema")
    assert r.returncode == 0 and "time_column" in json.loads(r.stdout)["schema"]["properties"]
