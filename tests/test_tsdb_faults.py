"""The store under bad input and damaged bytes (issue 8, observations 8-10), with the real station
file, real CLI processes, HTTP range servers and a Zenoh location running as separate
processes, and real bytes flipped in the files the locations hold.

- ingest never drops or changes a value silently: a bad row is an error naming file:line,
  column, what was expected and what was found, and nothing is written (or, asked to, the row is
  skipped and counted);
- catalog damage is detected, repaired from the data and other replicas, and a query never
  returns partial results without saying so;
- no bad value gives a traceback, and exit codes tell the truth (0 ok, 1 runtime, 2 bad input).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, spawn_python

from zflow import codec, keyexprs
from zflow.errors import RuntimeFailure, UserError
from zflow.transport import open_session
from zflow.tsdb.catalog.records import object_key
from zflow.tsdb.dataset import Dataset
from zflow.tsdb.ingest.infer import infer
from zflow.tsdb.ingest.readers import read_csv
from zflow.tsdb.query.selector import Query
from zflow.tsdb.serving.zenoh_front import Front

STATION = "tmy3_723170_greensboro.csv"
ROWS = 8760
LAST_LINE = 8762  # station line, header, 8760 rows


@pytest.fixture
def station(shared_data: Path) -> Path:
    if not (shared_data / STATION).is_file():
        pytest.skip("station file not present")
    return shared_data / STATION


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def tsdb(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "zflow", "tsdb", *args], capture_output=True, text=True,
                       env=_env(), cwd=cwd, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def flip(path: Path, offset: int) -> None:
    """Flip every bit of one byte of a file, in place (negative offsets count from the end)."""
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _schema_file(station: Path, tmp: Path, object_bytes: int = 200_000) -> None:
    schema, _ = infer(station, "gso", k=2, n=3)
    schema = schema.model_copy(update={"target_object_bytes": object_bytes})
    (tmp / "gso.json").write_text(schema.to_json())


def _config(tmp: Path, locations: list[str], extra: str = "", name: str = "ds.yaml") -> Path:
    (tmp / name).write_text(f"schema: gso.json\nlocations: {json.dumps(locations)}\n{extra}")
    return tmp / name


def _lines(station: Path) -> list[str]:
    return station.read_text().splitlines()


def _write(path: Path, lines: list[str], final_newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    return path


def _set_field(lines: list[str], line: int, header_name: str, value: str) -> list[str]:
    out = list(lines)
    col = out[1].split(",").index(header_name)
    fields = out[line - 1].split(",")
    fields[col] = value
    out[line - 1] = ",".join(fields)
    return out


# ---- observation 8: ingest ----------------------------------------------------------------------
def _bad_files(station: Path, tmp: Path) -> dict[str, tuple[Path, int, list[str]]]:
    """name -> (file, bad line, what the error must say)."""
    lines = _lines(station)
    last = lines[-1]
    short = list(lines)
    short[100] = ",".join(short[100].split(",")[:20])
    return {
        "truncated last line": (_write(tmp / "trunc.csv", [*lines[:-1], last[: len(last) // 2]], final_newline=False),
                                LAST_LINE, ["expected 71 fields", "ends in the middle of this line"]),
        "trailing comma": (_write(tmp / "comma.csv", [*lines[:-1], last + ","]), LAST_LINE,
                           ["expected 71 fields", "found 72 fields (a trailing comma?)"]),
        "short row in the middle": (_write(tmp / "short.csv", short), 101, ["found 20 fields"]),
        "more decimals than the scale": (_write(tmp / "dec.csv", _set_field(lines, 6, "Dry-bulb (C)", "10.04")), 6,
                                         ["column 'Dry-bulb (C)'", "at most 1 decimal", "'10.04'"]),
        "not a number": (_write(tmp / "nan.csv", _set_field(lines, 300, "GHI (W/m^2)", "n/a")), 300,
                         ["column 'GHI (W/m^2)'", "an integer (u16)", "'n/a'"]),
        "outside the integer type": (_write(tmp / "big.csv", _set_field(lines, 4000, "GHI (W/m^2)", "70000")), 4000,
                                     ["column 'GHI (W/m^2)'", "outside the range of u16"]),
        "not whole for an integer column": (_write(tmp / "frac.csv", _set_field(lines, 50, "Wdir (degrees)", "200.5")),
                                            50, ["column 'Wdir (degrees)'", "an integer", "'200.5'"]),
    }


@pytest.mark.timeout(240)
def test_ingest_refuses_every_kind_of_bad_row_with_its_line(station: Path, tmp_path: Path) -> None:
    _schema_file(station, tmp_path)
    data = next(read_csv(station, _load_schema(tmp_path)))
    for i, (case, (path, line, needles)) in enumerate(_bad_files(station, tmp_path).items()):
        locs = [f"file://{tmp_path}/{i}/l{j}" for j in range(3)]
        cfg = _config(tmp_path, locs, name=f"ds{i}.yaml")
        assert tsdb(tmp_path, "create", cfg.name).returncode == 0
        r = tsdb(tmp_path, "ingest", cfg.name, path.name)
        assert r.returncode == 2, (case, r.stdout, r.stderr)
        assert f"{path.name}:{line}:" in r.stderr and "nothing was ingested" in r.stderr, (case, r.stderr)
        for needle in needles:
            assert needle in r.stderr, (case, needle, r.stderr)
        with Dataset.from_config(cfg) as ds:
            assert ds.stats()["rows"] == 0, case  # not half-ingested
        # asked to, the bad row is left out, counted and named; every other value is stored as is
        r = tsdb(tmp_path, "ingest", cfg.name, path.name, "--skip-bad-rows")
        assert r.returncode == 0, (case, r.stderr)
        assert f"ingested {ROWS - 1:,} rows (skipped 1 bad row(s))" in r.stdout, (case, r.stdout)
        assert f"skipped {path.name}:{line}:" in r.stderr, (case, r.stderr)
        with Dataset.from_config(cfg) as ds:
            got = ds.query(cols=["time", "dry_bulb", "ghi", "wdir"])
        keep = np.ones(ROWS, dtype=bool)
        keep[line - 3] = False  # data row index of the bad line
        for c in ("time", "dry_bulb", "ghi", "wdir"):  # objects come back in ingest order
            assert np.array_equal(got.columns[c], data[c][keep]), (case, c)


def _load_schema(tmp: Path):
    from zflow.tsdb.schema import load_schema

    return load_schema(tmp / "gso.json")


def test_a_small_file_with_a_truncated_last_line_is_not_zero_rows(tmp_path: Path) -> None:
    """The header search used to pick the truncated last line as the header: 0 rows, exit 0."""
    (tmp_path / "s.json").write_text(json.dumps({
        "name": "s", "time_column": "t", "coding": {"k": 1, "n": 2},
        "columns": [{"name": "t", "type": "i64"}, {"name": "v", "type": "i16", "scale": 1}]}))
    (tmp_path / "ds.yaml").write_text(f"schema: s.json\nlocations: [file://{tmp_path}/a, file://{tmp_path}/b]\n")
    (tmp_path / "x.csv").write_text("t,v\n1,2.5\n2,3.5\n3")
    assert tsdb(tmp_path, "create", "ds.yaml").returncode == 0
    r = tsdb(tmp_path, "ingest", "ds.yaml", "x.csv")
    assert r.returncode == 2 and "x.csv:4: expected 2 fields like the header (line 1), found 1 fields" in r.stderr, r.stderr
    r = tsdb(tmp_path, "ingest", "ds.yaml", "x.csv", "--skip-bad-rows")
    assert r.returncode == 0 and "ingested 2 rows (skipped 1 bad row(s))" in r.stdout, (r.stdout, r.stderr)
    # every bad row of a file at once, whatever is wrong with it, in line order
    (tmp_path / "y.csv").write_text("t,v\n1,2.55\n2\n3,x\n4,1e9\n5,-0.5\n")
    r = tsdb(tmp_path, "ingest", "ds.yaml", "y.csv")
    lines = [ln.strip() for ln in r.stderr.splitlines()]
    assert r.returncode == 2 and [ln.split(":")[1] for ln in lines[1:5]] == ["2", "3", "4", "5"], r.stderr
    assert "found '2.55' (more decimals than the scale keeps)" in lines[1] and "found '1e9' (outside the range of i16)" in lines[4]
    assert "4 bad row(s); nothing was ingested" in r.stderr


@pytest.mark.timeout(120)
def test_ingest_of_several_files_writes_nothing_when_a_later_one_is_bad(station: Path, tmp_path: Path) -> None:
    _schema_file(station, tmp_path)
    cfg = _config(tmp_path, [f"file://{tmp_path}/l{j}" for j in range(3)])
    assert tsdb(tmp_path, "create", cfg.name).returncode == 0
    path, line, _ = _bad_files(station, tmp_path)["short row in the middle"]
    r = tsdb(tmp_path, "ingest", cfg.name, str(station), path.name)
    assert r.returncode == 2 and f"{path.name}:{line}:" in r.stderr, r.stderr
    with Dataset.from_config(cfg) as ds:
        assert ds.stats()["rows"] == 0
    assert not list((tmp_path / "l0").rglob("obj/*/*")), "fragments of an refused ingest were left behind"


def test_a_location_failing_mid_ingest_leaves_nothing_behind(station: Path, tmp_path: Path) -> None:
    """The first object is stored, then a location's directory turns into a file: the ingest
    fails (exit 1 from the CLI's point of view), no object becomes visible, and the fragments
    already written are deleted."""
    _schema_file(station, tmp_path, object_bytes=100_000)
    cfg = _config(tmp_path, [f"file://{tmp_path}/l{j}" for j in range(3)])
    ds = Dataset.from_config(cfg, create=True)
    sealed = []

    def break_a_location(meta) -> None:
        sealed.append(meta.oid)
        if len(sealed) == 1:
            shutil.rmtree(tmp_path / "l1")
            (tmp_path / "l1").write_text("a disk that went away")

    ds.ingestor.on_seal = break_a_location
    with pytest.raises(RuntimeFailure, match=r"nothing was ingested \(1 sealed object\(s\) discarded"):
        ds.ingest_files([station])
    assert len(sealed) == 1 and not ds.catalog.objects
    for j in (0, 2):
        assert not list((tmp_path / f"l{j}").rglob("obj/*/*")), "fragments of a failed ingest were left behind"
    (tmp_path / "l1").unlink()
    with Dataset.from_config(cfg) as again:
        assert again.stats()["rows"] == 0


def test_rows_and_columns_from_code_are_checked_like_files(station: Path, tmp_path: Path) -> None:
    _schema_file(station, tmp_path)
    schema = _load_schema(tmp_path)
    ds = Dataset.create(schema, [f"file://{tmp_path}/l{j}" for j in range(3)])
    data = next(read_csv(station, schema))
    rows = [{c.name: data[c.name][i].item() for c in schema.columns} for i in range(3)]
    rows[1]["dry_bulb"] = 10.04
    with pytest.raises(UserError) as e:
        ds.ingest(rows)
    assert "column 'dry_bulb': expected a number with at most 1 decimal(s)" in e.value.render()
    cols = {k: v[:5].copy() for k, v in data.items()}
    cols["dry_bulb"][2] = 10.04
    with pytest.raises(UserError) as e:
        ds.ingest(cols)
    assert "dry_bulb" in e.value.render() and "10.04" in e.value.render() and "row 2" in e.value.render()
    assert ds.ingestor.rows == 0


# ---- observation 9: catalog damage --------------------------------------------------------------
@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    with spawn_python(["-m", "storage_backends.http_range_server", "--dir", str(directory), "--port", "0"],
                      "listening on") as (_proc, line):
        yield line.split()[-1]


@contextlib.contextmanager
def zenoh_location(directory: Path, name: str, endpoint: str) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    with spawn_python(["-m", "storage_backends.zenoh_location", "--dir", str(directory), "--name", name,
                       "--connect", endpoint], "serving location"):
        yield f"zenoh:{name}"


def _ingest(station: Path, tmp: Path, locs: list[str], extra: str = "") -> tuple[Path, dict[str, np.ndarray]]:
    _schema_file(station, tmp)
    cfg = _config(tmp, locs, extra)
    with Dataset.from_config(cfg, create=True) as ds:
        data = next(read_csv(station, ds.schema))
        ds.ingest(data)
        ds.flush()
        assert len(ds.catalog.objects) >= 3
    return cfg, data


def _rows(r: subprocess.CompletedProcess) -> int:
    return len(json.loads(r.stdout)["columns"]["time"])


@pytest.mark.timeout(180)
def test_a_catalog_entry_corrupt_on_every_location_is_detected_and_rebuilt(station: Path, tmp_path: Path) -> None:
    dirs = [tmp_path / "srv", tmp_path / "l1", tmp_path / "l2"]
    with http_server(dirs[0]) as url:  # first: the entry is read back from a fragment over HTTP
        cfg, _ = _ingest(station, tmp_path, [url, f"file://{dirs[1]}", f"file://{dirs[2]}"])
        with Dataset.from_config(cfg) as ds:
            oid = ds.catalog.sorted_objects()[1].oid
        key = object_key("gso", oid)
        for d in dirs:  # the same byte in every replica
            flip(d / key, 100)
        # and one of the object's fragments gone: its entry comes back from the other k=2
        lost_frag = next((dirs[0] / "gso" / "obj" / oid).glob("*"))
        lost_frag.unlink()
        r = tsdb(tmp_path, "query", cfg.name, "--cols", "time,dry_bulb", "--format", "json")
        assert r.returncode == 0 and _rows(r) == ROWS, r.stderr  # was 8,445 rows, silently
        assert "corrupted on every location" in r.stderr and "repair" in r.stderr
        r = tsdb(tmp_path, "verify", cfg.name, "--json")
        assert r.returncode == 1, r.stdout
        rep = json.loads(r.stdout)
        assert sorted(rep["catalog_corrupt"]) == sorted(f"{loc}:{key}" for loc in
                                                        [url, f"file://{dirs[1]}", f"file://{dirs[2]}"])
        r = tsdb(tmp_path, "repair", cfg.name, "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["catalog_entries"] == 3, (r.stdout, r.stderr)
        assert json.loads(r.stdout)["rebuilt"] == [f"{url}:gso/obj/{oid}/{lost_frag.name}"]
        r = tsdb(tmp_path, "verify", cfg.name, "--json")
        assert r.returncode == 0 and not json.loads(r.stdout)["catalog_corrupt"], r.stdout
        # the rebuilt fragment carries its record piece again: with the catalog replicas
        # corrupted anew and another fragment gone, the entry still comes back from the data
        for d in dirs:
            flip(d / key, 100)
        next((dirs[1] / "gso" / "obj" / oid).glob("*")).unlink()
        with Dataset.from_config(cfg) as ds:
            assert ds.catalog.recovered == [oid] and len(ds.query(cols=["time"])) == ROWS
        assert tsdb(tmp_path, "repair", cfg.name).returncode == 0
        r = tsdb(tmp_path, "query", cfg.name, "--cols", "time", "--format", "json")
        assert r.returncode == 0 and _rows(r) == ROWS and "warning" not in r.stderr
        # one bad replica among good ones: verify says which, repair rewrites it from the others
        flip(dirs[1] / key, 7)
        r = tsdb(tmp_path, "verify", cfg.name, "--json")
        assert r.returncode == 1 and json.loads(r.stdout)["catalog_corrupt"] == [f"file://{dirs[1]}:{key}"]
        assert tsdb(tmp_path, "repair", cfg.name).returncode == 0
        assert tsdb(tmp_path, "verify", cfg.name).returncode == 0


@pytest.mark.timeout(120)
def test_a_catalog_header_corrupt_everywhere_is_rebuilt_from_the_config(station: Path, tmp_path: Path) -> None:
    dirs = [tmp_path / f"l{j}" for j in range(3)]
    cfg, _ = _ingest(station, tmp_path, [f"file://{d}" for d in dirs])
    for d in dirs:
        flip(d / "gso" / "catalog" / "schema", 50)
    r = tsdb(tmp_path, "query", cfg.name, "--cols", "time")
    assert r.returncode == 1 and "catalog header is unreadable on every location" in r.stderr, r.stderr
    assert tsdb(tmp_path, "verify", cfg.name).returncode == 1
    r = tsdb(tmp_path, "repair", cfg.name, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["catalog_entries"] == 3, (r.stdout, r.stderr)
    assert tsdb(tmp_path, "verify", cfg.name).returncode == 0
    r = tsdb(tmp_path, "query", cfg.name, "--cols", "time", "--format", "json")
    assert r.returncode == 0 and _rows(r) == ROWS


def _lose_object(tmp: Path, cfg: Path, dirs: list[Path]) -> tuple[str, int]:
    """Corrupt every catalog replica of one object and the entry copy in each of its fragments."""
    with Dataset.from_config(cfg) as ds:
        meta = ds.catalog.sorted_objects()[2]
    for d in dirs:
        flip(d / object_key("gso", meta.oid), 100)
        for frag in (d / "gso" / "obj" / meta.oid).glob("*"):
            flip(frag, -3)
    return meta.oid, meta.n_rows


@pytest.mark.timeout(180)
def test_a_lost_object_makes_queries_fail_loudly(station: Path, tmp_path: Path, router, zsession) -> None:
    dirs = [tmp_path / f"l{j}" for j in range(3)]
    cfg, _ = _ingest(station, tmp_path, [f"file://{d}" for d in dirs])
    oid, lost_rows = _lose_object(tmp_path, cfg, dirs)
    r = tsdb(tmp_path, "query", cfg.name, "--cols", "time", "--format", "json")
    assert r.returncode == 1 and not r.stdout, r.stdout[:200]
    assert "1 object(s) cannot be read" in r.stderr and oid in r.stderr and "--allow-partial" in r.stderr
    r = tsdb(tmp_path, "query", cfg.name, "--cols", "time", "--format", "json", "--allow-partial")
    assert r.returncode == 1 and "PARTIAL result" in r.stderr
    out = json.loads(r.stdout)
    assert len(out["columns"]["time"]) == ROWS - lost_rows and out["report"]["partial"]["objects_lost"] == [oid]
    r = tsdb(tmp_path, "verify", cfg.name, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["objects_lost"][0].startswith(oid)
    r = tsdb(tmp_path, "stats", cfg.name, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["objects_lost"] == [oid] and "cannot be read" in r.stderr
    r = tsdb(tmp_path, "repair", cfg.name, "--json")
    assert r.returncode == 1 and any(oid in f for f in json.loads(r.stdout)["failed"]), r.stdout
    with pytest.raises(RuntimeFailure, match="cannot be read"):
        Dataset.from_config(cfg).query()
    # the Zenoh front: an error reply by default, the rows with a partial flag when asked
    with Dataset.from_config(cfg) as ds, open_session(_client(router)) as fs, Front(ds, fs):
        sel = keyexprs.tsdb("gso", "query") + "?cols=time"
        reply = _wait_reply(zsession, sel)
        assert reply.err is not None and "cannot be read" in reply.err.payload.to_bytes().decode()
        reply = _wait_reply(zsession, sel + "&partial=1")
        value = codec.decode(reply.ok.payload.to_bytes(), str(reply.ok.encoding))
        assert len(value["columns"]["time"]) == ROWS - lost_rows
        assert value["report"]["partial"]["objects_lost"] == [oid]


def _client(router):
    return router.client_options()


def _wait_reply(session, selector: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = list(session.get(selector, timeout=5.0))
        if replies:
            return replies[0]
        time.sleep(0.05)
    raise AssertionError(f"no reply to {selector}")


# ---- observation 10: bad values and truthful exit codes ---------------------------------------
@pytest.mark.timeout(180)
def test_bad_query_values_are_errors_and_extreme_ones_answer(station: Path, tmp_path: Path) -> None:
    cfg, data = _ingest(station, tmp_path, [f"file://{tmp_path}/l{j}" for j in range(3)])
    for args in (["--limit", "-1"], ["limit=-1"], ["--filter", "dry_bulb>nan"], ["--time", "nan.."],
                 ["--filter", "dry_bulb!=NaN"]):
        r = tsdb(tmp_path, "query", cfg.name, *args)
        assert r.returncode == 2 and ("non-negative" in r.stderr or "0 or more" in r.stderr or "nan" in r.stderr.lower()), (args, r.stderr)
    r = tsdb(tmp_path, "query", cfg.name, "--filter", "dry_bulb<1e308", "--cols", "time", "--format", "json")
    assert r.returncode == 0 and _rows(r) == ROWS
    r = tsdb(tmp_path, "query", cfg.name, "--filter", "dry_bulb>inf", "--cols", "time", "--format", "json")
    assert r.returncode == 0 and _rows(r) == 0
    with Dataset.from_config(cfg) as ds:
        t = data["time"]
        for where, expect in [("dry_bulb>1e308", 0), ("ghi<-inf", 0), ("ghi>-inf", ROWS), ("dry_bulb=inf", 0),
                              ("dry_bulb!=inf", ROWS), ("time>=1e308", 0), ("time<=1e308", ROWS),
                              ("time=-1e400..1e400", ROWS), ("pressure<-1e308", 0)]:
            assert len(ds.query(filter=where, cols=["time"])) == expect, where
        for rng, expect in [("inf..", 0), ("..inf", ROWS), ("1e308..", 0), (f"{t[10]}..1e308", int((t >= t[10]).sum()))]:
            assert len(ds.query(time=rng, cols=["time"])) == expect, rng
        assert len(ds.query(cols=["time"], limit=0)) == 0 and len(ds.query(cols=["time"], limit=ROWS + 5)) == ROWS
        for bad in (dict(limit=-1), dict(limit=1.5), dict(selector=Query(time=(math.nan, None))),
                    dict(selector=Query(limit=-3))):
            with pytest.raises(UserError):
                ds.query(**bad)  # type: ignore[arg-type]
    (tmp_path / "afile").write_text("not a directory")
    bad = _config(tmp_path, [f"file://{tmp_path}/afile", f"file://{tmp_path}/l1", f"file://{tmp_path}/l2"],
                  name="file.yaml")
    for cmd in ("create", "query", "verify", "repair"):
        r = tsdb(tmp_path, cmd, bad.name)
        assert r.returncode == 2 and "afile is a file, not a directory" in r.stderr, (cmd, r.stderr)


def _payload_offset_of_chunk(chunk: int, chunk_size: int) -> int:
    from storage_backends.fragment_format import PAYLOAD_OFFSET

    return PAYLOAD_OFFSET + chunk * chunk_size + 5


@pytest.mark.timeout(240)
def test_one_chunk_corrupt_in_several_fragments_over_http_and_zenoh(station: Path, tmp_path: Path, router) -> None:
    dirs = [tmp_path / "local", tmp_path / "http", tmp_path / "zenoh"]
    with contextlib.ExitStack() as http, zenoh_location(dirs[2], "z1", router.endpoint) as zloc:
        url = http.enter_context(http_server(dirs[1]))
        extra = f"zenoh: {{connect: [{router.endpoint}]}}\n"
        cfg, _ = _ingest(station, tmp_path, [f"file://{dirs[0]}", url, zloc], extra)
        with Dataset.from_config(cfg) as ds:
            meta = ds.catalog.sorted_objects()[1]
            chunk_size = ds.schema.chunk_size
        frags = [p for d in dirs for p in (d / "gso" / "obj" / meta.oid).glob("*")]
        assert len(frags) == 3
        # one fragment's chunk, another's piece of the object record: queries decode around
        # the chunk, verify finds both (the record piece counts as the chunk after the last),
        # repair rebuilds both
        flip(frags[0], _payload_offset_of_chunk(0, chunk_size))
        flip(frags[2], -2)
        r = tsdb(tmp_path, "query", cfg.name, "--format", "json", "--cols", "time,dry_bulb")
        assert r.returncode == 0 and _rows(r) == ROWS
        r = tsdb(tmp_path, "verify", cfg.name, "--json")
        assert r.returncode == 1 and len(json.loads(r.stdout)["corrupt"]) == 2, r.stdout
        r = tsdb(tmp_path, "repair", cfg.name, "--json")
        assert r.returncode == 0 and len(json.loads(r.stdout)["chunks_repaired"]) == 2, r.stdout
        assert tsdb(tmp_path, "verify", cfg.name).returncode == 0
        # the same chunk in two of the three fragments (k=2): the data is gone; every command
        # says so, in words, with exit code 1
        for p in frags[:2]:
            flip(p, _payload_offset_of_chunk(0, chunk_size))
        for extra_args in ([], ["--verify"]):
            r = tsdb(tmp_path, "query", cfg.name, "--format", "json", *extra_args)
            assert r.returncode == 1 and not r.stdout, r.stdout[:200]
            assert f"object {meta.oid}" in r.stderr and "corrupt" in r.stderr, r.stderr
        r = tsdb(tmp_path, "verify", cfg.name, "--json")
        assert r.returncode == 1 and len(json.loads(r.stdout)["corrupt"]) == 2
        r = tsdb(tmp_path, "repair", cfg.name, "--json")
        rep = json.loads(r.stdout)
        assert r.returncode == 1 and len(rep["failed"]) == 2 and "need k=2" in rep["failed"][0], r.stdout
        assert "could not be repaired" in r.stderr
        # a location that is down is a failure of repair too, not a silent skip
        flip(frags[1], _payload_offset_of_chunk(0, chunk_size))  # http's fragment intact again
        http.close()  # the HTTP range server process stops
        r = tsdb(tmp_path, "repair", cfg.name, "--json")
        rep = json.loads(r.stdout)
        assert r.returncode == 1 and any("unreachable" in f for f in rep["failed"]), r.stdout
