"""Pydantic models for dataflow descriptors: the single source of truth for the file format.

The models check *shape* only (field names, value types, ranges); everything that needs the
whole flow (ids, links, ports, operators on disk) is checked in :mod:`zflow.dataflow.validate`
so every problem is reported at once with its location. Field names follow Zenoh-Flow
(``sources``/``operators``/``sinks``, ``links``, ``mapping``, ``library``, ``descriptor``) and
dora-rs (inline ``inputs: {port: node/output}``, timers, queue size and drop policy).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, field_validator

from zflow.errors import clip

Int = Annotated[int, Strict()]  # no true -> 1, no "5" -> 5: a quoted number is a mistake here


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QoSModel(_Strict):
    """Delivery semantics of a link; every field optional so levels can be layered."""

    queue_size: Int | None = Field(None, ge=1, description="receiver queue length (messages)")
    policy: Literal["block", "drop_oldest", "latest"] | None = Field(
        None, description="what a full queue does: block the producer, drop the oldest, keep only the latest"
    )
    priority: Int | None = Field(None, ge=1, le=7, description="Zenoh priority: 1 real-time .. 7 background")
    congestion_control: Literal["block", "drop"] | None = None
    reliability: Literal["reliable", "best_effort"] | None = None
    express: bool | None = Field(None, description="Zenoh express: send without batching")
    loop_idle: float | str | None = Field(
        None, description="a feedback input (one closing a cycle): seconds without a message that end "
                          "the loop once its feed has ended (number, or '500ms' / '2s'; default 1s)")

    @field_validator("loop_idle")
    @classmethod
    def _idle(cls, value: float | str | None) -> float | None:
        return None if value is None else parse_seconds(value)


class RestartModel(_Strict):
    policy: Literal["never", "on-failure"] | None = None
    max_restarts: Int | None = Field(None, ge=0)
    backoff: float | str | None = Field(
        None, description="seconds between restarts (number, or '500ms' / '2s' / '1m')"
    )

    @field_validator("backoff")
    @classmethod
    def _seconds(cls, value: float | str | None) -> float | None:
        return None if value is None else parse_seconds(value)


def parse_seconds(value: float | str) -> float:
    """``0.5``, ``"500ms"``, ``"2s"``, ``"1m"`` -> seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
            if text.endswith(suffix):
                text, seconds_scale = text[: -len(suffix)], scale
                break
        else:
            seconds_scale = 1.0
        try:
            seconds = float(text) * seconds_scale
        except ValueError:
            raise ValueError(f"expected a duration like 0.5, '500ms', '2s' or '1m', got {clip(value)}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite duration of 0 seconds or more, got {clip(value)}")
    return seconds


class PortDecl(_Strict):
    """A port with an optional type (Zenoh-Flow's ``{id, type}`` form)."""

    id: str
    type: str | None = Field(
        None,
        description="any | bytes | json | str | int | float | bool | ndarray | ndarray[float32] | model:pkg.mod:Class",
    )
    qos: QoSModel | None = Field(None, description="inputs only: QoS of the link into this input")


class InputRef(_Strict):
    """dora-style inline input with options: ``{source: node/output, type:, qos:}``."""

    source: str = Field(description="node/output, or a timer: zflow/timer/millis/100")
    type: str | None = None
    qos: QoSModel | None = None


def _by_shape(value: Any) -> str:
    """Pick a union branch from the value's shape, so a mistake gets one error, not one per branch."""
    if isinstance(value, dict | BaseModel):
        return "object"
    if isinstance(value, list):
        return "list"
    return "name"


PortItem = Annotated[
    Annotated[str, Tag("name")] | Annotated[PortDecl, Tag("object")], Discriminator(_by_shape)
]
InlineInput = Annotated[
    Annotated[str, Tag("name")] | Annotated[InputRef, Tag("object")], Discriminator(_by_shape)
]
PortList = list[PortItem]
InlineInputs = dict[str, InlineInput]


def _inputs_shape(value: Any) -> str:
    return "object" if isinstance(value, dict) else "list"


Inputs = Annotated[
    Annotated[PortList, Tag("list")] | Annotated[InlineInputs, Tag("object")],
    Discriminator(_inputs_shape),
]


class NodeModel(_Strict):
    """A source, operator or sink. Exactly one of operator/library/uri/descriptor/zenoh-* says what runs."""

    id: str
    description: str | None = None
    operator: str | None = Field(
        None,
        description="./file.py, ./file.py:Class, pkg.module:Class, or a built-in operator name",
    )
    library: str | None = Field(None, description="Zenoh-Flow: file://path/to/node.py")
    uri: str | None = Field(None, description="Zenoh-Flow (older): file://path/to/node.py")
    descriptor: str | None = Field(None, description="a composite operator (or Zenoh-Flow node) file")
    zenoh_subscribers: dict[str, str] | None = Field(
        None, alias="zenoh-subscribers", description="source ports fed by Zenoh key expressions"
    )
    zenoh_publishers: dict[str, str] | None = Field(
        None, alias="zenoh-publishers", description="sink ports published to Zenoh key expressions"
    )
    configuration: dict[str, Any] | None = None
    inputs: Inputs | None = None
    outputs: PortList | None = None
    qos: QoSModel | None = Field(None, description="default QoS of this node's inputs")
    restart: RestartModel | None = None
    group: str | None = Field(None, description="nodes sharing a group run in one process")
    deploy: dict[str, Any] | None = Field(
        None, description="placement hints: daemon, site, arch, labels, pool"
    )
    tags: list[str] | None = Field(None, description="Zenoh-Flow compatibility; ignored")


class LinkFrom(_Strict):
    node: str
    output: str


class LinkTo(_Strict):
    node: str
    input: str


class LinkModel(_Strict):
    from_: LinkFrom = Field(alias="from")
    to: LinkTo
    qos: QoSModel | None = None


class ExposedInput(_Strict):
    """A composite's input ``id`` feeding the inner ``node``'s ``input``."""

    id: str
    node: str
    input: str


class ExposedOutput(_Strict):
    id: str
    node: str
    output: str


class _FlowBody(_Strict):
    description: str | None = None
    vars: dict[str, Any] | None = Field(None, description="{{ VAR }} defaults, overridable with --var")
    configuration: dict[str, Any] | None = None
    operators: list[NodeModel] = Field(default_factory=list)
    links: list[LinkModel] = Field(default_factory=list)


class DataflowModel(_FlowBody):
    """A dataflow file."""

    name: str | None = Field(None, description="the flow name (a key-expression chunk)")
    flow: str | None = Field(None, description="Zenoh-Flow 0.4 spelling of `name`")
    uuid: str | None = Field(None, description="Zenoh-Flow compatibility; ignored")
    qos: QoSModel | None = Field(None, description="flow-wide QoS defaults")
    restart: RestartModel | None = Field(None, description="flow-wide restart policy default")
    sources: list[NodeModel] = Field(default_factory=list)
    sinks: list[NodeModel] = Field(default_factory=list)
    mapping: dict[str, list[str]] | None = Field(
        None, description="Zenoh-Flow placement: {daemon: [node ids]} (becomes deploy.daemon)"
    )


class CompositeModel(_FlowBody):
    """A composite operator file: inner operators and links, with exposed ports."""

    inputs: list[ExposedInput] = Field(default_factory=list)
    outputs: list[ExposedOutput] = Field(default_factory=list)


class NodeFileModel(_Strict):
    """A Zenoh-Flow node descriptor file (``descriptor:`` pointing at one node)."""

    id: str | None = None
    description: str | None = None
    vars: dict[str, Any] | None = None
    operator: str | None = None
    library: str | None = None
    uri: str | None = None
    zenoh_subscribers: dict[str, str] | None = Field(None, alias="zenoh-subscribers")
    zenoh_publishers: dict[str, str] | None = Field(None, alias="zenoh-publishers")
    configuration: dict[str, Any] | None = None
    inputs: PortList | None = None
    outputs: PortList | None = None
    tags: list[str] | None = None


__all__ = [
    "CompositeModel",
    "DataflowModel",
    "ExposedInput",
    "ExposedOutput",
    "InputRef",
    "LinkModel",
    "NodeFileModel",
    "NodeModel",
    "PortDecl",
    "QoSModel",
    "RestartModel",
]
