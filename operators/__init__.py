"""Built-in operators. ``BUILTINS`` maps an operator name (as written in a descriptor's
``operator:`` field) to ``"module:attr"``; it must stay a plain dict literal so the descriptor
checker can read it without importing any operator module.
"""

BUILTINS: dict[str, str] = {
    "timer": "operators.timer:Timer",
    "zenoh-subscribe": "operators.zenoh_bridge:ZenohSubscribe",
    "zenoh-publish": "operators.zenoh_bridge:ZenohPublish",
    "csv-replay": "operators.replay:CsvReplay",
    "jsonl-replay": "operators.replay:JsonlReplay",
    "jsonl-sink": "operators.sinks:JsonlSink",
    "print": "operators.sinks:Print",
    "sensor-sim": "operators.sensor_sim:SensorSim",
    "window": "operators.window:Window",
    "threshold": "operators.threshold:Threshold",
}
