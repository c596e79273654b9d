"""The flattened intermediate form between the descriptor models and the compiled graph.

Every element keeps where it came from (document + path), so the checks in
:mod:`zflow.dataflow.validate` can point at the user's line, even inside a composite file.
Composites keep their own :class:`Scope`, because links inside a composite name nodes by
their local ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from zflow.dataflow.graph import RunSpec
from zflow.documents import Document
from zflow.errors import Path, Problem

Kind = Literal["source", "operator", "sink"]


@dataclass(frozen=True)
class Where:
    doc: Document
    path: Path

    def problem(self, message: str, hint: str | None = None) -> Problem:
        return self.doc.problem(self.path, message, hint)

    def at(self, *more: str | int) -> Where:
        return Where(self.doc, (*self.path, *more))


@dataclass
class Port:
    name: str
    type: str | None
    where: Where
    qos: dict[str, Any] = field(default_factory=dict)  # input-level QoS (either input syntax)


@dataclass
class InlineSource:
    """An input written dora-style: ``port: node/output`` or ``port: {source:, qos:}``."""

    text: str
    where: Where


@dataclass
class Node:
    id: str  # flattened id ("stage.clean")
    local: str  # id inside its scope ("clean")
    kind: Kind
    where: Where
    scope: Scope
    run: RunSpec | None = None
    inputs: dict[str, Port] = field(default_factory=dict)
    outputs: dict[str, Port] = field(default_factory=dict)
    inline: dict[str, InlineSource] = field(default_factory=dict)
    timers: dict[str, float] = field(default_factory=dict)
    qos: dict[str, Any] = field(default_factory=dict)  # default for this node's inputs (layered)
    config: dict[str, Any] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)
    group: str | None = None
    deploy: dict[str, Any] = field(default_factory=dict)
    base_dir: str = "."


@dataclass
class Exposed:
    """A composite port mapped onto an inner node's port (``node`` is local to the inner scope)."""

    id: str
    node: str
    port: str
    where: Where


@dataclass
class Composite:
    local: str
    id: str  # flattened id, also the prefix of its members
    where: Where
    scope: Scope
    inputs: dict[str, Exposed] = field(default_factory=dict)
    outputs: dict[str, Exposed] = field(default_factory=dict)
    kind: Kind = "operator"


@dataclass
class LinkDecl:
    """A written-out link, with ids local to its scope."""

    src_node: str
    src_output: str
    dst_node: str
    dst_input: str
    where: Where
    qos: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scope:
    prefix: str  # "" for the flow, "stage." inside composite "stage"
    doc: Document
    members: dict[str, Node | Composite] = field(default_factory=dict)
    links: list[LinkDecl] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # ids whose declaration failed (already reported)


@dataclass
class Edge:
    """A resolved connection between two leaf nodes."""

    src: str
    output: str
    dst: str
    input: str
    where: Where
    qos: dict[str, Any] = field(default_factory=dict)  # link-level (written-out links only)


@dataclass
class FlowIR:
    name: str
    root: Scope
    nodes: dict[str, Node] = field(default_factory=dict)  # leaves, by flattened id
    vars: dict[str, Any] = field(default_factory=dict)
    qos: dict[str, Any] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)
    source_file: str | None = None
    problems: list[Problem] = field(default_factory=list)
    partial: bool = False  # some links/ports were unreadable: skip "not connected" checks
