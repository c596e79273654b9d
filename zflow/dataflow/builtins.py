"""The registry of built-in operators: names a descriptor uses in ``operator:``.

Only names and ``"module:attr"`` strings live here, so the descriptor layer knows the built-ins
without importing the library that implements them (``operators/``, which sits above the
runtime and imports it): the dependency points one way. The loader resolves a string when a
node host runs the operator; the checker resolves :data:`CONFIG_CHECKER` to validate a
built-in's configuration with the models the ``operators`` package defines.
"""

from __future__ import annotations

import importlib
from typing import Any

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

# Default ports of each built-in: a node that uses a built-in without declaring
# ``inputs``/``outputs`` can get these. The Zenoh bridges take their ports from their key
# expressions, so they are not listed.
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

# The built-ins' configuration check (pydantic models only, no operator code or numpy).
CONFIG_CHECKER = "operators.configs:check_config"


def resolve(target: str) -> Any:
    """The object a ``"module:attr"`` string names (imported on first use)."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def builtin_operators() -> dict[str, str]:
    """Built-in operator name -> ``"module:attr"``."""
    return dict(BUILTINS)


def builtin_ports(name: str) -> dict[str, list[str]]:
    """Default ``inputs``/``outputs`` of a built-in (empty when it has none listed)."""
    return BUILTIN_PORTS.get(name, {})


def builtin_config_problems(name: str, config: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems with a built-in's merged configuration, as (key path, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = resolve(CONFIG_CHECKER)(name, config)
    return problems
