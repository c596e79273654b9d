"""Descriptors run end to end: async nodes, numpy payloads, timers, Zenoh bridges, vars."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from zflow import codec
from zflow.dataflow import compile_file
from zflow.runtime.local_run import run_flow

NODES = Path(__file__).parent / "nodes" / "basic.py"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text.replace("NODES", str(NODES)).replace("OUT", str(tmp_path / "out.jsonl")))
    return path


def _rows(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


def test_async_source_and_operator(tmp_path):
    flow = _write(tmp_path, """
name: asyncflow
sources: [{id: src, operator: "NODES:async_count", outputs: [out], configuration: {n: 50}}]
operators: [{id: op, operator: "NODES:async_triple", inputs: {in: src/out}, outputs: [out]}]
sinks: [{id: sink, operator: "NODES:Collect", inputs: {in: op/out}, configuration: {path: OUT}}]
""")
    result = run_flow(compile_file(flow), log=None)
    assert result.exit_code == 0
    assert [r["i"] for r in _rows(tmp_path)] == [3 * i for i in range(50)]


def test_numpy_arrays_cross_processes_typed(tmp_path):
    flow = _write(tmp_path, """
name: arrays
sources: [{id: src, operator: "NODES:arrays", outputs: [{id: out, type: json}], configuration: {n: 5}}]
operators: [{id: stats, operator: "NODES:ArrayStats", inputs: {in: src/out}, outputs: [out]}]
sinks: [{id: sink, operator: "NODES:Collect", inputs: {in: stats/out}, configuration: {path: OUT}}]
""")
    assert run_flow(compile_file(flow), log=None).exit_code == 0
    rows = _rows(tmp_path)
    assert [r["sum"] for r in rows] == [6.0 * i for i in range(5)]
    assert {r["dtype"] for r in rows} == {"float32"} and rows[0]["shape"] == [2, 3]
    now = time.time_ns()
    assert all(abs(r["t"] - now) < 60e9 for r in rows)  # HLC time is wall-clock based


def test_timer_inputs_drive_an_operator(tmp_path):
    flow = _write(tmp_path, """
name: timers
vars: {PERIOD: 20}
operators:
  - id: ticker
    operator: "NODES:Ticks"
    inputs: {tick: "zflow/timer/millis/{{ PERIOD }}"}
    outputs: [out]
sinks: [{id: sink, operator: "NODES:Collect", inputs: {in: ticker/out}, configuration: {path: OUT}}]
""")
    result = run_flow(compile_file(flow, vars={"PERIOD": "10"}), duration=1.0, log=None)
    assert result.stopped and result.exit_code == 0
    rows = _rows(tmp_path)
    assert len(rows) >= 5
    assert [r["tick"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["node"] == "ticker" and rows[0]["flow"] == "timers"


def test_zenoh_bridges_subscribe_and_publish_user_keys(tmp_path, router, zsession):
    flow = _write(tmp_path, """
name: bridges
sources: [{id: ext, zenoh-subscribers: {raw: "site1/sensors/**"}}]
operators: [{id: dbl, operator: "NODES:double", inputs: {in: ext/raw}, outputs: [out]}]
sinks: [{id: pub, zenoh-publishers: {in: "site1/doubled"}, inputs: {in: dbl/out}}]
""")
    got: list[dict] = []
    enough = threading.Event()

    def on_sample(sample):
        got.append(codec.decode(sample.payload.to_bytes(), str(sample.encoding)))
        if len(got) >= 3:
            enough.set()

    sub = zsession.declare_subscriber("site1/doubled", on_sample)
    stop = threading.Event()

    def feed(_ctl):
        def loop():
            i = 0
            while not enough.is_set() and i < 500:
                payload, ct = codec.encode({"i": i})
                zsession.put("site1/sensors/t1", payload, encoding=ct)
                i += 1
                time.sleep(0.02)
            stop.set()
        threading.Thread(target=loop, daemon=True).start()

    try:
        result = run_flow(compile_file(flow), connect=[router.endpoint], log=None, stop=stop, on_ready=feed)
    finally:
        sub.undeclare()
    assert result.exit_code == 0
    assert len(got) >= 3
    assert all(row["i"] % 2 == 0 for row in got)
