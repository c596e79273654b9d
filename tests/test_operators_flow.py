"""Built-in operators in real flows: embedded Zenoh router, one node-host process per node."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from operator_helpers import Harness
from runtime_helpers import graph, node

from operators.sensor_sim import SensorSim
from zflow.runtime.local_run import run_flow

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _run(g, lines: list[str] | None = None):
    result = run_flow(g, log=(lambda name, line: lines.append(f"[{name}] {line}")) if lines is not None else None)
    assert result.exit_code == 0 and not result.stopped, result.status
    return result


@pytest.mark.timeout(60)
def test_csv_replay_of_the_station_year_reaches_a_jsonl_sink(tmp_path, shared_data):
    out = tmp_path / "tmy3.jsonl"
    _run(graph("tmy3", [
        node("replay", "source", "csv-replay", builtin=True, outputs=["out"],
             config={"path": str(shared_data / "tmy3_723170_greensboro.csv"), "skip_rows": 1, "batch": 500,
                     "columns": ["Date (MM/DD/YYYY)", "Time (HH:MM)", "Dry-bulb (C)", "RHum (%)"]}),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["in"], config={"path": str(out), "flush_every": 0}),
    ], [("replay", "out", "sink", "in")]))
    rows = _lines(out)
    assert len(rows) == 8760
    assert rows[0] == {"Date (MM/DD/YYYY)": "01/01/1988", "Time (HH:MM)": "01:00", "Dry-bulb (C)": 10.0, "RHum (%)": 77}
    assert rows[-1]["Time (HH:MM)"] == "24:00"


@pytest.mark.timeout(60)
def test_sensor_windows_over_zenoh_match_numpy_on_the_same_seed(tmp_path):
    sim_cfg = {"epochs": 60, "seed": 11, "motes": 12}
    win_cfg = {"key": "moteid", "by": "time", "time_field": "epoch", "size": 10,
               "fields": ["temperature", "voltage"], "aggregates": ["count", "mean", "max", "std"]}
    out = tmp_path / "windows.jsonl"
    _run(graph("winflow", [
        node("sensors", "source", "sensor-sim", builtin=True, outputs=["out"], config=sim_cfg),
        node("window", "operator", "window", builtin=True, inputs=["in"], outputs=["out"], config=win_cfg),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["in"], config={"path": str(out)}),
    ], [("sensors", "out", "window", "in"), ("window", "out", "sink", "in")]))
    windows = _lines(out)
    readings = Harness(SensorSim, sim_cfg).run()  # the same seed gives the same readings
    # one window per mote and 10-epoch span that holds a reading (gaps can empty a span)
    assert len(windows) == len({(r["moteid"], r["epoch"] // 10) for r in readings}) > 12 * 6
    for w in windows:
        sel = [r for r in readings if r["moteid"] == w["moteid"] and w["start"] <= r["epoch"] < w["end"]]
        temps = np.array([r["temperature"] for r in sel])
        assert w["count"] == len(sel)
        assert w["temperature_mean"] == pytest.approx(temps.mean())
        assert w["temperature_std"] == pytest.approx(temps.std())
        assert w["voltage_max"] == max(r["voltage"] for r in sel)


@pytest.mark.timeout(60)
def test_demo_pipeline_on_the_runtime_finds_the_injected_anomalies(tmp_path):
    """sensors -> clean (user file) -> window -> threshold -> sinks, every node its own process."""
    sim = {"epochs": 120, "seed": 3, "fault_rate": 0.01, "event_rate": 0.003}
    nodes = [
        node("sensors", "source", "sensor-sim", builtin=True, outputs=["out"], config=sim),
        node("clean", "operator", str(DEMO / "clean.py"), inputs=["in"], outputs=["out", "stats"]),
        node("window", "operator", "window", builtin=True, inputs=["in"], outputs=["out"],
             config={"key": "moteid", "by": "time", "time_field": "epoch", "size": 20,
                     "fields": ["temperature"], "aggregates": ["mean"]}),
        node("detect", "operator", "threshold", builtin=True, inputs=["in"], outputs=["out", "anomalies"],
             config={"key": "moteid", "min_count": 3, "fields": {"temperature_mean": {"zscore": 5}}}),
        node("anomalies", "sink", "jsonl-sink", builtin=True, inputs=["in"],
             config={"path": str(tmp_path / "anomalies.jsonl")}),
        node("summary", "sink", str(DEMO / "summary.py"), inputs=["stats", "windows", "anomalies"],
             config={"summary_path": str(tmp_path / "summary.json")}),
    ]
    links = [("sensors", "out", "clean", "in"), ("clean", "out", "window", "in"), ("window", "out", "detect", "in"),
             ("detect", "anomalies", "anomalies", "in"), ("clean", "stats", "summary", "stats"),
             ("window", "out", "summary", "windows"), ("detect", "anomalies", "summary", "anomalies")]
    lines: list[str] = []
    _run(graph("demo", nodes, links), lines)
    summary = json.loads((tmp_path / "summary.json").read_text())
    h = Harness(SensorSim, sim)
    readings = h.run()
    faulty = sum(1 for r in readings if r["temperature"] > 60 or r["humidity"] < 0)
    assert summary["complete"] and summary["clean"]["seen"] == len(readings)
    assert sum(summary["clean"]["dropped"].values()) == faulty > 0
    kept = [r for r in readings if r["temperature"] <= 60 and r["humidity"] >= 0]
    assert summary["windows"] == len({(r["moteid"], r["epoch"] // 20) for r in kept}) and summary["motes"] == 54
    anomalies = _lines(tmp_path / "anomalies.jsonl")
    assert summary["anomalies"] == len(anomalies) > 0
    # every anomaly is a window of a mote that really had a heat event (temperature well above usual)
    for a in anomalies:
        assert a["z"] > 5 and a["value"] > a["mean"]
    assert any("clean: kept" in line for line in lines)


@pytest.mark.timeout(60)
def test_timer_source_feeds_a_print_sink(tmp_path):
    lines: list[str] = []
    _run(graph("ticks", [
        node("tick", "source", "timer", builtin=True, outputs=["out"],
             config={"period_ms": 5, "count": 20, "payload": "tick"}),
        node("show", "sink", "print", builtin=True, inputs=["in"], config={"format": "tick {value}", "every": 5}),
    ], [("tick", "out", "show", "in")]), lines)
    assert [line.split("] ", 1)[1] for line in lines if "] tick " in line] == ["tick 0", "tick 5", "tick 10", "tick 15"]


@pytest.mark.timeout(60)
def test_jsonl_replay_in_a_shared_process_group(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"i": i, "x": i / 2}) + "\n" for i in range(1000)))
    out = tmp_path / "out.jsonl"
    _run(graph("jl", [
        node("replay", "source", "jsonl-replay", builtin=True, outputs=["out"],
             config={"path": str(src), "batch": 128}, group="g"),  # batches marked through in-memory links
        node("win", "operator", "window", builtin=True, inputs=["in"], outputs=["out"],
             config={"fields": ["x"], "size": 100, "aggregates": ["sum"]}, group="g"),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["in"], config={"path": str(out)}, group="g"),
    ], [("replay", "out", "win", "in"), ("win", "out", "sink", "in")]))
    sums = [w["x_sum"] for w in _lines(out)]
    assert sums == [sum(i / 2 for i in range(k, k + 100)) for k in range(0, 1000, 100)]


@pytest.mark.timeout(60)
def test_bad_operator_configuration_fails_the_flow_with_a_clear_message():
    from zflow.errors import UserError

    lines: list[str] = []
    g = graph("bad", [
        node("tick", "source", "timer", builtin=True, outputs=["out"], config={"period_ms": 0}),
        node("show", "sink", "print", builtin=True, inputs=["in"]),
    ], [("tick", "out", "show", "in")])
    with pytest.raises(UserError, match="refused their input: bad/tick"):
        run_flow(g, log=lambda name, line: lines.append(line))
    assert any("tick.configuration.period_ms: timer: input should be greater than 0" in line for line in lines)


def test_every_user_facing_example_checks(cli_env, zflow_cmd):
    import subprocess

    examples = sorted(str(p) for p in (DEMO.parent).glob("*.yaml"))
    assert examples
    for example in examples:
        proc = subprocess.run([*zflow_cmd, "check", example], env=cli_env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(60)
def test_weather_example_replays_the_station_year_into_daily_windows(tmp_path, shared_data):
    from zflow.dataflow import compile_file

    g = compile_file(str(DEMO.parent / "weather.yaml"),
                     vars={"DATA": str(shared_data / "tmy3_723170_greensboro.csv"), "OUT": str(tmp_path)})
    lines: list[str] = []
    _run(g, lines)
    days = _lines(tmp_path / "daily.jsonl")
    assert len(days) == 365 and all(d["count"] == 24 for d in days)
    assert days[0]["start"] == days[0]["end"] == "01/01/1988"
    frost = [line for line in lines if "frost on " in line]
    assert frost and frost[0].endswith("frost on 01/03/1988: -2.2 C")


@pytest.mark.timeout(60)
def test_paced_replay_follows_the_time_column(tmp_path, shared_data):
    """One recorded hour per wall second: a short run replays a handful of rows, not the year."""
    out = tmp_path / "paced.jsonl"
    g = graph("paced", [
        node("replay", "source", "csv-replay", builtin=True, outputs=["out"],
             config={"path": str(shared_data / "tmy3_723170_greensboro.csv"), "skip_rows": 1, "speed": 3600,
                     "time_column": ["Date (MM/DD/YYYY)", "Time (HH:MM)"], "time_format": "%m/%d/%Y %H:%M",
                     "columns": ["Time (HH:MM)"]}),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["in"], config={"path": str(out)}),
    ], [("replay", "out", "sink", "in")])
    result = run_flow(g, duration=1.5, log=None)
    assert result.stopped and result.exit_code == 0
    rows = _lines(out)
    assert 1 <= len(rows) < 60
    assert [r["Time (HH:MM)"] for r in rows[:2]] == ["01:00", "02:00"][: len(rows[:2])]


@pytest.mark.timeout(60)
def test_zenoh_subscribe_bridges_several_keys_and_skips_garbage(tmp_path, router, zsession):
    import threading
    import time

    from zflow import codec

    out = tmp_path / "bridged.jsonl"
    g = graph("bridge", [
        node("ext", "source", "zenoh-subscribe", builtin=True, outputs=["a", "b"],
             config={"keys": {"a": "site/a/**", "b": "site/b"}, "policy": "drop_oldest", "queue_size": 64}),
        node("sink", "sink", "jsonl-sink", builtin=True, inputs=["a", "b"],
             config={"path": str(out), "port_field": "port"}),
    ], [("ext", "a", "sink", "a"), ("ext", "b", "sink", "b")])
    stop = threading.Event()

    def feed(_ctl):
        def loop():
            zsession.put("site/a/x", b"\x81\xc1", encoding=codec.MSGPACK)  # not msgpack: skipped
            zsession.delete("site/a/x")  # deletions are not data
            for i in range(20):
                for key in ("site/a/x", "site/b"):
                    payload, ct = codec.encode({"i": i})
                    zsession.put(key, payload, encoding=ct)
                time.sleep(0.01)
            zsession.put("site/b", '{"done": true}', encoding=codec.JSON)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and '"done"' not in (out.read_text() if out.exists() else ""):
                time.sleep(0.05)
            stop.set()
        threading.Thread(target=loop, daemon=True).start()

    lines: list[str] = []
    result = run_flow(g, connect=[router.endpoint], stop=stop, on_ready=feed,
                      log=lambda name, line: lines.append(line))
    assert result.exit_code == 0
    rows = _lines(out)
    assert [r["i"] for r in rows if r["port"] == "a"] == list(range(20))
    assert [r.get("i") for r in rows if r["port"] == "b"] == [*range(20), None]
    assert any("skipped 1 undecodable sample" in line for line in lines)
