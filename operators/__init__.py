"""Built-in operators, by the name a descriptor uses in ``operator:``.

``BUILTINS`` maps a name to ``"module:attr"``; it must stay a plain dict literal, so the
descriptor checker can read it without importing any operator module (modules are imported
only when a flow uses them). Each module's docstring lists its configuration keys and ports.
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

# Built-ins that keep a checkpoint in the daemons' replicated storage and resume from it when
# re-placed or restarted (instance events say so; any other source is reported as starting over).
CHECKPOINTED: tuple[str, ...] = ("timer", "csv-replay", "jsonl-replay")

# Default ports of each built-in (a literal too, for the descriptor checker): a node that uses a
# built-in without declaring ``inputs``/``outputs`` can get these. The Zenoh bridges take their
# ports from their key expressions, so they are not listed.
BUILTIN_PORTS: dict[str, dict[str, list[str]]] = {
    "timer": {"inputs": [], "outputs": ["out"]},
    "csv-replay": {"inputs": [], "outputs": ["out"]},
    "jsonl-replay": {"inputs": [], "outputs": ["out"]},
    "sensor-sim": {"inputs": [], "outputs": ["out"]},
    "window": {"inputs": ["in"], "outputs": ["out"]},
    "threshold": {"inputs": ["in"], "outputs": ["out", "anomalies"]},
    "jsonl-sink": {"inputs": ["in"], "outputs": []},
    "print": {"inputs": ["in"], "outputs": []},
}
