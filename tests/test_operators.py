"""Built-in operators called directly (no runtime): behaviour, numbers checked against numpy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from operator_helpers import Harness

from operators._tables import batch_metadata, columns, is_batch, parse_time, rows
from operators.replay import CsvReplay, JsonlReplay
from operators.sensor_sim import FIELDS, SensorSim
from operators.sinks import JsonlSink, Print
from operators.threshold import Threshold, Welford
from operators.timer import Timer
from operators.window import Window
from zflow.dataflow.builtins import BUILTINS
from zflow.dataflow.graph import RunSpec
from zflow.errors import UserError
from zflow.runtime.loader import load_node_class

TMY3 = "tmy3_723170_greensboro.csv"
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def test_every_builtin_loads_and_documents_its_configuration():
    for name in BUILTINS:
        cls = load_node_class(RunSpec(kind="builtin", target=name))
        module_doc = __import__(cls.__module__, fromlist=["x"]).__doc__ or ""
        assert "onfiguration" in module_doc or "config" in module_doc, name
        assert "Ports" in module_doc or "keys" in module_doc, name


def test_configuration_models_are_documented_and_checkable_without_the_operators():
    import subprocess
    import sys

    from operators.configs import CONFIGS, check_config, schemas

    for name, model in CONFIGS.items():
        cls = load_node_class(RunSpec(kind="builtin", target=name))
        doc = __import__(cls.__module__, fromlist=["x"]).__doc__ or ""
        for key in model.model_fields:
            assert key in doc, f"{name}: configuration key {key!r} is not documented"
    assert set(schemas()) == set(CONFIGS) and schemas()["window"]["required"] == ["fields", "size"]
    assert check_config("window", {"fields": ["x"], "size": 5}) == []
    assert check_config("window", {"fields": ["x"], "size": 5, "by": "time"}) == [
        (("time_field",), "time windows need a time_field (the event time of a record)")]
    assert check_config("threshold", {"fields": {"t": {"zscore": -1}}}) == [
        (("fields", "t", "zscore"), "input should be greater than 0 (got -1)")]
    assert check_config("csv-replay", {}) == [(("path",), "required configuration key is missing")]
    assert check_config("not-a-builtin", {"x": 1}) == []
    # the checker's import stays light: no numpy, no operator module
    code = "import sys, operators.configs; print(sorted(m for m in sys.modules if m.startswith(('numpy', 'operators'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=DEMO.parent.parent).stdout
    assert out.strip() == "['operators', 'operators.configs']"


def test_builtin_ports_table_matches_the_classes():
    from zflow.dataflow.builtins import BUILTIN_PORTS

    for name, ports in BUILTIN_PORTS.items():
        cls = load_node_class(RunSpec(kind="builtin", target=name))
        assert (list(cls.inputs), list(cls.outputs)) == (ports["inputs"], ports["outputs"]), name
    assert set(BUILTINS) - set(BUILTIN_PORTS) == {"zenoh-subscribe", "zenoh-publish"}


# -- timer ----------------------------------------------------------------------------------------

def test_timer_counts_ticks_and_stops():
    assert Harness(Timer, {"period_ms": 1, "count": 5, "payload": "tick"}).run() == [0, 1, 2, 3, 4]
    both = Harness(Timer, {"period_ms": 1, "count": 3, "payload": "both"}).run()
    assert [b["tick"] for b in both] == [0, 1, 2]
    assert all(b["time"] > 1.6e18 for b in both)  # ns since the Unix epoch
    times = Harness(Timer, {"period_ms": 1, "count": 3}).run()
    assert times == sorted(times)


def test_timer_refuses_bad_configuration_naming_node_and_key():
    with pytest.raises(UserError) as err:
        Harness(Timer, {"period_ms": -5, "payload": "clock"}, node="tick")
    text = str(err.value)
    assert "tick.configuration.period_ms" in text and "greater than 0" in text
    assert "tick.configuration.payload" in text and "'clock'" in text


def test_misspelt_configuration_key_is_warned_with_a_hint(caplog):
    Harness(Timer, {"perod_ms": 5, "count": 1, "threshold": 30}, node="tick")  # threshold: a flow-level key
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["tick: configuration key 'perod_ms' is not used by timer (did you mean 'period_ms'?)"]


# -- replays --------------------------------------------------------------------------------------

def test_csv_replay_reads_the_real_station_year(shared_data):
    rows_ = Harness(CsvReplay, {"path": str(shared_data / TMY3), "skip_rows": 1}).run()
    assert len(rows_) == 8760
    first = rows_[0]
    assert first["Date (MM/DD/YYYY)"] == "01/01/1988" and first["Time (HH:MM)"] == "01:00"
    assert isinstance(first["Dry-bulb (C)"], float) and first["Dry-bulb (C)"] == 10.0
    assert isinstance(first["RHum (%)"], int) and first["RHum (%)"] == 77
    assert first["TotCld source"] == "A"
    # header_row counts lines after skip_rows: both ways of skipping the station line agree
    same = Harness(CsvReplay, {"path": str(shared_data / TMY3), "header_row": 1, "limit": 3}).run()
    assert same == rows_[:3]


def test_csv_replay_batches_numpy_columns_and_selects_columns(shared_data):
    cfg = {"path": str(shared_data / TMY3), "skip_rows": 1, "batch": 1000,
           "columns": ["Date (MM/DD/YYYY)", "Dry-bulb (C)", "GHI (W/m^2)"]}
    batches = Harness(CsvReplay, cfg).run()
    assert [len(b["Dry-bulb (C)"]) for b in batches] == [1000] * 8 + [760]
    temp = np.concatenate([b["Dry-bulb (C)"] for b in batches])
    assert temp.dtype == np.float64 and temp.shape == (8760,)
    assert batches[0]["GHI (W/m^2)"].dtype == np.int64
    assert isinstance(batches[0]["Date (MM/DD/YYYY)"], list)
    assert -20 < temp.mean() < 30
    assert set(batches[0]) == set(cfg["columns"])


def test_csv_replay_paced_by_a_time_column_emits_the_same_rows(shared_data):
    cfg = {"path": str(shared_data / TMY3), "skip_rows": 1, "limit": 5, "speed": 3.6e7,
           "time_column": ["Date (MM/DD/YYYY)", "Time (HH:MM)"], "time_format": "%m/%d/%Y %H:%M"}
    assert len(Harness(CsvReplay, cfg).run()) == 5


def test_csv_replay_bad_configuration(tmp_path, shared_data):
    with pytest.raises(UserError, match="file not found"):
        Harness(CsvReplay, {"path": str(tmp_path / "nope.csv")})
    with pytest.raises(UserError, match="needs a time_column"):
        Harness(CsvReplay, {"path": str(shared_data / TMY3), "speed": 1})
    with pytest.raises(UserError, match="did you mean 'Dry-bulb \\(C\\)'"):  # at start-up, not mid-stream
        Harness(CsvReplay, {"path": str(shared_data / TMY3), "skip_rows": 1, "speed": 1, "time_column": "Dry bulb (C)"})
    with pytest.raises(UserError, match="columns: csv-replay: no column 'GHI'"):
        Harness(CsvReplay, {"path": str(shared_data / TMY3), "skip_rows": 1, "columns": ["GHI"]})
    with pytest.raises(UserError, match="time_format: csv-replay: cannot read the first row's time"):
        Harness(CsvReplay, {"path": str(shared_data / TMY3), "skip_rows": 1, "speed": 1,
                            "time_column": ["Date (MM/DD/YYYY)", "Time (HH:MM)"], "time_format": "%Y-%m-%d %H:%M"})


def test_csv_without_header_and_type_overrides(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1;2.5;a\n2;;b\n3;4;7\n")
    out = Harness(CsvReplay, {"path": str(path), "delimiter": ";", "header_row": None,
                              "types": {"col2": "str"}}).run()
    assert out == [{"col0": 1, "col1": 2.5, "col2": "a"}, {"col0": 2, "col1": None, "col2": "b"},
                   {"col0": 3, "col1": 4.0, "col2": "7"}]


def test_empty_files_replay_nothing(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n")
    (tmp_path / "e.jsonl").write_text("\n")
    assert Harness(CsvReplay, {"path": str(tmp_path / "h.csv"), "batch": 10}).run() == []
    assert Harness(JsonlReplay, {"path": str(tmp_path / "e.jsonl")}).run() == []


def test_jsonl_replay_rows_batches_and_bad_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"t": i, "v": i * 1.5, "s": f"x{i}"}) + "\n" for i in range(5)))
    assert Harness(JsonlReplay, {"path": str(path)}).run()[2] == {"t": 2, "v": 3.0, "s": "x2"}
    batches = Harness(JsonlReplay, {"path": str(path), "batch": 2}).run()
    assert [b["t"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    path.write_text('{"t": 1}\nnot json\n[1, 2]\n{"t": 2}\n')
    with pytest.raises(UserError) as err:
        Harness(JsonlReplay, {"path": str(path)}).run()
    assert f"{path}:2" in str(err.value) and "on_error: skip" in str(err.value)
    assert Harness(JsonlReplay, {"path": str(path), "on_error": "skip"}).run() == [{"t": 1}, {"t": 2}]


def test_parse_time_formats():
    assert parse_time(12.5) == 12.5
    assert parse_time("1970-01-01T00:01:00") == 60.0
    assert parse_time("01/01/1988 24:00", "%m/%d/%Y %H:%M") == parse_time("01/02/1988 00:00", "%m/%d/%Y %H:%M")
    assert parse_time("1970-01-01 12:24:00") == 12 * 3600 + 24 * 60  # 24 as minutes is not midnight


def test_rows_and_columns_round_trip():
    data = [{"a": 1, "b": 2.5, "c": "x"}, {"a": 2, "b": None, "c": "y"}]
    cols = columns(data)
    meta = batch_metadata(2)
    assert is_batch(cols, meta) and cols["a"].dtype == np.int64 and math.isnan(cols["b"][1])
    back = list(rows(cols, meta))
    assert back[0] == data[0] and back[1]["c"] == "y"
    assert list(rows(cols)) == [cols]  # without the batch mark, a dict of arrays is one record
    assert not is_batch(cols, {}) and list(rows({"a": 1})) == [{"a": 1}]


# -- sinks ----------------------------------------------------------------------------------------

def test_jsonl_sink_writes_rows_batches_and_numpy_values(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    h = Harness(JsonlSink, {"path": str(path), "flush_every": 2, "port_field": "port"}, outputs=())
    h.feed([{"a": np.float32(1.5)}, {"a": np.arange(2)}], end=False)  # a row holding an array
    h.feed([{"a": np.array([3, 4]), "b": ["x", "y"]}], batches=True)  # a batch: one line per row
    h.node.teardown(h.ctx)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == [{"port": "in", "a": 1.5}, {"port": "in", "a": [0, 1]},
                     {"port": "in", "a": 3, "b": "x"}, {"port": "in", "a": 4, "b": "y"}]


def test_jsonl_sink_unwritable_path_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot open"):
        Harness(JsonlSink, {"path": str(tmp_path / "file" / "x.jsonl")}, outputs=())


def test_print_sink_formats_every_nth(capsys):
    h = Harness(Print, {"format": "mote {moteid}: {temperature:.1f} C (#{n})", "every": 2}, outputs=())
    h.feed([{"moteid": i, "temperature": 20 + i / 3} for i in range(5)])
    assert capsys.readouterr().out.splitlines() == ["mote 0: 20.0 C (#1)", "mote 2: 20.7 C (#3)",
                                                    "mote 4: 21.3 C (#5)"]
    h = Harness(Print, {"format": "{missing}", "limit": 1}, outputs=())
    h.feed([{"a": 1}, {"a": 2}])
    assert capsys.readouterr().out.splitlines() == ["{'a': 1}"]
    with pytest.raises(UserError, match="bad format string"):
        Harness(Print, {"format": "{oops"}, outputs=())


# -- sensor simulator -----------------------------------------------------------------------------

def _sim(**cfg):
    return Harness(SensorSim, {"epochs": 40, **cfg}).run()


def test_sensor_sim_schema_and_determinism_per_seed():
    a, b, c = _sim(seed=3), _sim(seed=3), _sim(seed=4)
    assert a == b and a != c
    assert tuple(a[0]) == FIELDS
    assert {r["moteid"] for r in a} == set(range(1, 55))
    assert [r["epoch"] for r in a] == sorted(r["epoch"] for r in a)
    r = a[0]
    assert r["date"] == "2004-02-28" and r["time"].startswith("00:58:4")
    assert 10 < r["temperature"] < 30 and 20 < r["humidity"] < 60 and 2.5 < r["voltage"] < 2.8


def test_sensor_sim_same_stream_at_any_speed_and_in_batches():
    flat = _sim(seed=5, epochs=6)
    paced = _sim(seed=5, epochs=6, speed=31 / 0.002)  # 2 ms per epoch
    assert paced == flat
    h = Harness(SensorSim, {"epochs": 6, "seed": 5, "batch": True})
    batches = h.run()
    assert h.meta["out"] == [{"batch": len(b["moteid"])} for b in batches]
    assert len(batches) == 6 and batches[0]["temperature"].dtype == np.float64
    assert [row for b in batches for row in rows(b, batch_metadata(len(b["moteid"])))] == flat


def test_sensor_sim_injects_gaps_and_faults_at_the_configured_rates():
    clean = _sim(seed=1, epochs=100, gap_rate=0, fault_rate=0)
    assert len(clean) == 54 * 100
    assert all(-10 < r["temperature"] < 60 and 0 < r["humidity"] < 100 for r in clean)
    h = Harness(SensorSim, {"epochs": 100, "seed": 1, "gap_rate": 0.2, "fault_rate": 0.05})
    noisy = h.run()
    missing = 54 * 100 - len(noisy)
    assert 0.1 < missing / 5400 < 0.35 and h.node.sim.stats.missing == missing
    faulty = [r for r in noisy if r["temperature"] > 100 or r["humidity"] < 0]
    assert 0.03 < len(faulty) / len(noisy) < 0.07 and len(faulty) == h.node.sim.stats.faulty
    # some motes miss whole runs of epochs (radio outages), not only single readings
    per_mote = {}
    for r in noisy:
        per_mote.setdefault(r["moteid"], []).append(r["epoch"])
    assert max(max(np.diff(e)) for e in per_mote.values()) >= 3


def test_sensor_sim_dying_batteries_send_garbage():
    out = _sim(seed=2, epochs=120, battery_epochs=100, gap_rate=0, fault_rate=0)
    last = [r for r in out if r["epoch"] == 120]
    assert np.mean([r["voltage"] for r in last]) < np.mean([r["voltage"] for r in out if r["epoch"] == 1])
    dead = [r for r in out if r["voltage"] < 2.3]
    assert dead and all(r["temperature"] > 100 or r["humidity"] < 0 for r in dead)


def test_sensor_sim_weak_batteries_die_during_the_run():
    base = _sim(seed=6, epochs=200, gap_rate=0, fault_rate=0)
    weak = _sim(seed=6, epochs=200, gap_rate=0, fault_rate=0, weak_batteries=3)
    garbage = {r["moteid"] for r in weak if r["temperature"] > 100}
    assert len(garbage) == 3
    assert [r for r in weak if r["moteid"] not in garbage] == [r for r in base if r["moteid"] not in garbage]
    assert all(r["voltage"] < 2.4 for r in weak if r["moteid"] in garbage and r["epoch"] == 200)


def test_sensor_sim_heat_events_stay_in_range():
    base = _sim(seed=9, epochs=60, gap_rate=0, fault_rate=0)
    hot = _sim(seed=9, epochs=60, gap_rate=0, fault_rate=0, event_rate=0.02)
    diffs = [h["temperature"] - b["temperature"] for h, b in zip(hot, base, strict=True)]
    assert max(diffs) > 5 and max(h["temperature"] for h in hot) < 60


def test_sensor_sim_bad_configuration():
    with pytest.raises(UserError) as err:
        Harness(SensorSim, {"motes": 0, "fault_rate": 2, "start": "yesterday"}, node="sensors")
    text = str(err.value)
    for key in ("motes", "fault_rate", "start"):
        assert f"sensors.configuration.{key}" in text


# -- window ---------------------------------------------------------------------------------------

def _records(n=200, keys=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"k": int(i % keys), "t": float(i), "x": float(v), "y": float(v) * 2 + 1}
            for i, v in enumerate(rng.normal(10, 3, n))]


def test_count_windows_per_key_match_numpy():
    data = _records()
    h = Harness(Window, {"fields": ["x", "y"], "size": 10, "key": "k",
                         "aggregates": ["count", "mean", "min", "max", "sum", "std", "first", "last"]})
    out = h.feed(data)["out"]
    for key in range(3):
        xs = np.array([r["x"] for r in data if r["k"] == key])
        wins = [w for w in out if w["k"] == key]
        assert len(wins) == math.ceil(len(xs) / 10)
        for i, w in enumerate(wins):
            chunk = xs[i * 10:(i + 1) * 10]
            assert w["count"] == len(chunk) and w.get("partial", False) == (len(chunk) < 10)
            assert w["x_mean"] == pytest.approx(chunk.mean())
            assert w["x_std"] == pytest.approx(chunk.std())
            assert w["x_sum"] == pytest.approx(chunk.sum())
            assert (w["x_min"], w["x_max"]) == (chunk.min(), chunk.max())
            assert (w["x_first"], w["x_last"]) == (chunk[0], chunk[-1])


def test_sliding_time_windows_match_a_brute_force_evaluation():
    data = _records(300)
    h = Harness(Window, {"fields": ["x"], "by": "time", "time_field": "t", "size": 30, "slide": 10,
                         "key": "k", "aggregates": ["count", "mean", "max"]})
    out = h.feed(data)["out"]
    for w in out:
        sel = np.array([r["x"] for r in data if r["k"] == w["k"] and w["start"] <= r["t"] < w["end"]])
        assert w["count"] == len(sel)
        assert w["x_mean"] == pytest.approx(sel.mean()) and w["x_max"] == sel.max()
        assert w["end"] - w["start"] == 30 and w["start"] % 10 == 0
    complete = [w for w in out if not w.get("partial")]
    assert len({(w["k"], w["start"]) for w in out}) == len(out)
    assert all(w["end"] <= 300 for w in complete)


def test_window_accepts_batches_and_missing_values():
    data = _records(60, keys=1)
    as_rows = Harness(Window, {"fields": ["x"], "size": 7}).feed(data)["out"]
    as_batches = Harness(Window, {"fields": ["x"], "size": 7}).feed(
        [columns(data[i:i + 25]) for i in range(0, 60, 25)], batches=True)["out"]
    assert as_batches == as_rows
    out = Harness(Window, {"fields": ["x"], "size": 3, "aggregates": ["count", "mean"]}).feed(
        [{"x": 1.0}, {"x": None}, {"y": 2}])["out"]
    assert out == [{"start": 0, "end": 3, "count": 3, "x_count": 1, "x_mean": 1.0}]


def test_partial_windows_flush_with_mixed_keys_and_text_times():
    data = [{"k": 1, "d": "01/02", "x": 1.0}, {"k": "a", "d": "01/01", "x": 2.0}, {"k": None, "x": 3.0}]
    out = Harness(Window, {"fields": ["x"], "size": 5, "key": "k", "time_field": "d",
                           "aggregates": ["sum"]}).feed(data)["out"]
    assert sorted(w["x_sum"] for w in out) == [1.0, 2.0, 3.0] and all(w["partial"] for w in out)
    assert {(w["k"], w["start"], w["end"]) for w in out} == {(1, "01/02", "01/02"), ("a", "01/01", "01/01"),
                                                            (None, None, None)}


def test_time_window_drops_late_records_unless_lateness_allows():
    data = [{"t": t, "x": 1.0} for t in (1, 2, 11, 3, 12, 25)]
    strict = Harness(Window, {"fields": ["x"], "by": "time", "time_field": "t", "size": 10,
                              "aggregates": ["count"]}).feed(data)["out"]
    assert [(w["start"], w["count"]) for w in strict] == [(0, 2), (10, 2), (20, 1)]
    lenient = Harness(Window, {"fields": ["x"], "by": "time", "time_field": "t", "size": 10, "lateness": 5,
                               "aggregates": ["count"]}).feed(data)["out"]
    assert [(w["start"], w["count"]) for w in lenient] == [(0, 3), (10, 2), (20, 1)]


def test_window_bad_configuration():
    with pytest.raises(UserError, match="time_field"):
        Harness(Window, {"fields": ["x"], "by": "time", "size": 5})
    with pytest.raises(UserError, match="larger than size"):
        Harness(Window, {"fields": ["x"], "size": 5, "slide": 10})
    with pytest.raises(UserError, match="whole number"):
        Harness(Window, {"fields": ["x"], "size": 2.5})
    with pytest.raises(UserError) as err:
        Harness(Window, {"fields": [], "size": 5, "aggregates": ["median"]}, node="w")
    assert "w.configuration.fields" in str(err.value) and "w.configuration.aggregates[0]" in str(err.value)


# -- threshold ------------------------------------------------------------------------------------

def test_welford_matches_numpy():
    xs = np.random.default_rng(1).normal(100, 5, 1000)
    w = Welford()
    for x in xs:
        w.add(float(x))
    assert w.mean == pytest.approx(xs.mean()) and w.std == pytest.approx(xs.std())


def test_threshold_flags_bounds_and_zscores_per_key():
    rng = np.random.default_rng(0)
    data = [{"k": i % 2, "v": float(20 + 10 * (i % 2) + rng.normal(0, 0.5))} for i in range(200)]
    data[101]["v"] = 40.0  # k=1 around 30: a z-score outlier, and above max
    data[150]["v"] = 26.0  # k=0 around 20: 12 std away, inside the bounds
    data[60]["v"] = -1.0   # below min
    h = Harness(Threshold, {"key": "k", "min_count": 10,
                            "fields": {"v": {"min": 0, "max": 35, "zscore": 5}}}, outputs=("out", "anomalies"))
    out = h.feed(data)
    found = {(a["record"]["v"], a["rule"]) for a in out["anomalies"]}
    assert found == {(40.0, "max"), (26.0, "zscore"), (-1.0, "min")}
    z = next(a for a in out["anomalies"] if a["rule"] == "zscore")
    assert z["k"] == 0 and z["z"] > 5 and z["mean"] == pytest.approx(20, abs=0.3)
    assert len(out["out"]) == 197  # clean records pass through


def test_threshold_keeps_anomalies_out_of_its_statistics_and_pass_all():
    data = [{"v": float(x)} for x in [10, 11, 9, 10, 11, 9, 10, 11, 9, 10]] + [{"v": 100.0}] * 3
    h = Harness(Threshold, {"min_count": 5, "fields": {"v": {"zscore": 4}}, "pass_all": True},
                outputs=("out", "anomalies"))
    out = h.feed(data)
    assert len(out["anomalies"]) == 3 and len(out["out"]) == 13
    learn = Harness(Threshold, {"min_count": 5, "fields": {"v": {"zscore": 4}}, "learn_anomalies": True},
                    outputs=("out", "anomalies")).feed(data)
    assert len(learn["anomalies"]) < 3


def test_ew_statistics_follow_a_drift_that_welford_flags():
    from operators.threshold import EWStats

    xs = [0.0, 1.0, 3.0, 2.0]
    ew = EWStats(halflife=1)  # alpha 0.5
    for x in xs:
        ew.add(x)
    mean, var = xs[0], 0.0
    for x in xs[1:]:
        diff = x - mean
        mean, var = mean + 0.5 * diff, 0.5 * (var + 0.5 * diff * diff)
    assert (ew.mean, ew.var) == pytest.approx((mean, var))
    noise = np.random.default_rng(3).normal(0, 0.2, 400)
    # steady for a while, then a slow trend (a daily cycle warming up), plus noise
    drift = [{"v": max(0, i - 300) * 0.05 + float(e)} for i, e in enumerate(noise)]
    rules = {"v": {"zscore": 5}}
    flat = Harness(Threshold, {"fields": rules}, outputs=("out", "anomalies")).feed(drift)
    recent = Harness(Threshold, {"fields": rules, "halflife": 20}, outputs=("out", "anomalies")).feed(drift)
    assert len(flat["anomalies"]) > 50 and recent["anomalies"] == []
    spike = [*drift[:350], {"v": drift[349]["v"] + 5}]
    assert len(Harness(Threshold, {"fields": rules, "halflife": 20}, outputs=("out", "anomalies"))
               .feed(spike)["anomalies"]) == 1


def test_threshold_bad_rules():
    with pytest.raises(UserError, match="at least one of min, max, zscore"):
        Harness(Threshold, {"fields": {"v": {}}})
    with pytest.raises(UserError, match="above max"):
        Harness(Threshold, {"fields": {"v": {"min": 5, "max": 1}}})


# -- the demo's user operator ---------------------------------------------------------------------

def test_demo_clean_operator_drops_impossible_readings():
    cls = load_node_class(RunSpec(kind="python", target=str(DEMO / "clean.py")))
    h = Harness(cls, {}, outputs=("out", "stats"))
    readings = _sim(seed=4, epochs=50, fault_rate=0.05)
    out = h.feed(readings)
    bad = [r for r in readings if r["temperature"] > 60 or r["humidity"] < 0]
    assert len(out["out"]) == len(readings) - len(bad) and bad
    (stats,) = out["stats"]
    assert stats["seen"] == len(readings) and sum(stats["dropped"].values()) == len(bad)
