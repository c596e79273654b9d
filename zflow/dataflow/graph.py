"""The compiled graph: what the compiler produces and the runtime, placement and daemons consume.

Plain frozen dataclasses (not pydantic) so node hosts and daemons load it cheaply; it is
JSON-serialisable with :meth:`Graph.to_dict` / :meth:`Graph.from_dict` and is the only thing
that crosses from the descriptor layer to the runtime layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

NodeKind = Literal["source", "operator", "sink"]
RunKind = Literal["python", "builtin", "zenoh-subscriber", "zenoh-publisher"]
Policy = Literal["block", "drop_oldest", "latest"]


@dataclass(frozen=True)
class QoS:
    """Per-link delivery semantics, resolved (link over node over flow over defaults)."""

    queue_size: int = 64
    policy: Policy = "block"
    priority: int = 5  # Zenoh priority 1 (real-time) .. 7 (background)
    congestion_control: Literal["block", "drop"] = "block"
    reliability: Literal["reliable", "best_effort"] = "reliable"
    express: bool = False
    loop_idle: float = 1.0  # feedback inputs: seconds of quiet that end a loop whose feed ended


@dataclass(frozen=True)
class RestartPolicy:
    policy: Literal["never", "on-failure"] = "never"
    max_restarts: int = 3
    backoff_s: float = 0.5


@dataclass(frozen=True)
class RunSpec:
    """What a node runs.

    ``python``: ``target`` is a file path (absolute) or an importable module, ``attr`` the
    class/function name inside it (None = the single node defined there).
    ``builtin``: ``target`` is the built-in operator name (``operators/``).
    ``zenoh-subscriber`` / ``zenoh-publisher``: ``keys`` maps port -> user key expression.
    """

    kind: RunKind
    target: str = ""
    attr: str | None = None
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Upstream:
    node: str
    output: str
    key: str  # the key expression the input subscribes to


@dataclass(frozen=True)
class InputSpec:
    port: str
    type: str | None = None
    upstream: Upstream | None = None  # None for timer inputs
    timer_ms: float | None = None  # dora-style ``zflow/timer/millis/N`` inputs
    qos: QoS = field(default_factory=QoS)
    feedback: bool = False  # closes a cycle: does not hold the node open at end of stream


@dataclass(frozen=True)
class OutputSpec:
    port: str
    key: str
    type: str | None = None
    qos: QoS = field(default_factory=QoS)  # publisher side: priority/congestion/reliability


@dataclass(frozen=True)
class NodeSpec:
    id: str  # flattened: composite members are namespaced "stage.clean"
    kind: NodeKind
    run: RunSpec
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: dict[str, OutputSpec] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # nodes sharing a group share a process (in-memory links)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    deploy: dict[str, Any] = field(default_factory=dict)  # placement hints (daemon issue)
    base_dir: str = "."  # directory of the descriptor that declared the node
    source_file: str | None = None
    source_line: int | None = None


@dataclass(frozen=True)
class Link:
    src_node: str
    src_output: str
    dst_node: str
    dst_input: str
    key: str
    qos: QoS = field(default_factory=QoS)


@dataclass(frozen=True)
class Graph:
    flow: str
    instance: str
    nodes: dict[str, NodeSpec]
    links: tuple[Link, ...] = ()
    vars: dict[str, str] = field(default_factory=dict)
    source_file: str | None = None

    # -- views ------------------------------------------------------------------------------
    def groups(self) -> dict[str, list[str]]:
        """Process groups: node ids by group; an ungrouped node is a group of its own."""
        out: dict[str, list[str]] = {}
        for node in self.nodes.values():
            out.setdefault(node.group or node.id, []).append(node.id)
        return out

    def with_instance(self, instance: str) -> Graph:
        """Re-key the graph for another instance id (keys embed the instance)."""
        from zflow.dataflow.keys import rekey  # local: avoid a cycle at import time

        return rekey(self, instance)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Graph:
        def qos(d: dict[str, Any] | None) -> QoS:
            return QoS(**d) if d else QoS()

        nodes = {}
        for nid, n in data["nodes"].items():
            inputs = {
                p: InputSpec(
                    port=i["port"],
                    type=i.get("type"),
                    upstream=Upstream(**i["upstream"]) if i.get("upstream") else None,
                    timer_ms=i.get("timer_ms"),
                    qos=qos(i.get("qos")),
                    feedback=bool(i.get("feedback", False)),
                )
                for p, i in n.get("inputs", {}).items()
            }
            outputs = {
                p: OutputSpec(port=o["port"], key=o["key"], type=o.get("type"), qos=qos(o.get("qos")))
                for p, o in n.get("outputs", {}).items()
            }
            nodes[nid] = NodeSpec(
                id=n["id"],
                kind=n["kind"],
                run=RunSpec(**n["run"]),
                inputs=inputs,
                outputs=outputs,
                config=n.get("config", {}),
                group=n.get("group"),
                restart=RestartPolicy(**n.get("restart", {})),
                deploy=n.get("deploy", {}),
                base_dir=n.get("base_dir", "."),
                source_file=n.get("source_file"),
                source_line=n.get("source_line"),
            )
        links = tuple(
            Link(**{**lk, "qos": qos(lk.get("qos"))}) for lk in data.get("links", [])
        )
        return Graph(
            flow=data["flow"],
            instance=data["instance"],
            nodes=nodes,
            links=links,
            vars=data.get("vars", {}),
            source_file=data.get("source_file"),
        )
