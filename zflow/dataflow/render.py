"""Printing a compiled graph: plain text, Mermaid or Graphviz DOT for people, JSON for tools."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from zflow.dataflow.graph import Graph, NodeSpec, QoS

_DEFAULT_QOS = QoS()


def _run(node: NodeSpec) -> str:
    run = node.run
    if run.kind in ("zenoh-subscriber", "zenoh-publisher"):
        return f"{run.kind} " + ", ".join(f"{p}={k}" for p, k in run.keys.items())
    if run.kind == "builtin":
        return f"builtin {run.target}"
    return f"python {_short(run.target)}" + (f":{run.attr}" if run.attr else "")


def _short(target: str) -> str:
    """File targets relative to the working directory when inside it (labels stay readable)."""
    if not os.path.isabs(target):
        return target
    rel = os.path.relpath(target)
    return target if rel.startswith("..") else rel


def _qos(qos: QoS) -> str:
    """Only what differs from the defaults, so the common case stays short."""
    diff = [f"{k}={getattr(qos, k)}" for k in qos.__dataclass_fields__
            if getattr(qos, k) != getattr(_DEFAULT_QOS, k)]
    return ", ".join(diff) if diff else "default"


def _port(name: str, type_: str | None) -> str:
    return f"{name}:{type_}" if type_ else name


def text(graph: Graph) -> str:
    lines = [f"flow {graph.flow} (instance {graph.instance}): {len(graph.nodes)} nodes, {len(graph.links)} links"]
    lines.append("nodes:")
    for node in graph.nodes.values():
        lines.append(f"  {node.id} [{node.kind}] {_run(node)}")
        ins = []
        for port, spec in node.inputs.items():
            extra = f" <- timer {spec.timer_ms:g} ms" if spec.timer_ms is not None else ""
            ins.append(_port(port, spec.type) + extra)
        if ins:
            lines.append("    inputs:  " + ", ".join(ins))
        if node.outputs:
            lines.append("    outputs: " + ", ".join(f"{_port(p, o.type)} -> {o.key}" for p, o in node.outputs.items()))
        if node.group:
            lines.append(f"    group:   {node.group}")
        if node.deploy:
            lines.append(f"    deploy:  {json.dumps(node.deploy, sort_keys=True)}")
        if node.restart.policy != "never":
            r = node.restart
            lines.append(f"    restart: {r.policy} (max {r.max_restarts}, backoff {r.backoff_s:g}s)")
    lines.append("links:")
    for lk in graph.links:
        lines.append(f"  {lk.src_node}/{lk.src_output} -> {lk.dst_node}/{lk.dst_input}")
        lines.append(f"    key: {lk.key}  qos: {_qos(lk.qos)}")
    return "\n".join(lines)


def _safe(node_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in node_id)


def mermaid(graph: Graph) -> str:
    shapes = {"source": ('(["', '"])'), "operator": ('["', '"]'), "sink": ('[("', '")]')}
    lines = ["flowchart LR"]
    for node in graph.nodes.values():
        left, right = shapes[node.kind]
        lines.append(f"  {_safe(node.id)}{left}{node.id}<br/>{_run(node)}{right}")
        for port, spec in node.inputs.items():
            if spec.timer_ms is not None:
                timer = _safe(f"{node.id}.{port}.timer")
                lines.append(f"  {timer}((\"{spec.timer_ms:g} ms\")) -.->|{port}| {_safe(node.id)}")
    for lk in graph.links:
        label = f"{lk.src_output} → {lk.dst_input}"
        q = _qos(lk.qos)
        if q != "default":
            label += f" ({q})"
        lines.append(f"  {_safe(lk.src_node)} -->|\"{label}\"| {_safe(lk.dst_node)}")
    return "\n".join(lines)


def dot(graph: Graph) -> str:
    shapes = {"source": "invhouse", "operator": "box", "sink": "house"}
    lines = [f"digraph {json.dumps(graph.flow)} {{", "  rankdir=LR;"]
    for node in graph.nodes.values():
        label = json.dumps(f"{node.id}\n{_run(node)}")
        lines.append(f"  {json.dumps(node.id)} [shape={shapes[node.kind]}, label={label}];")
        for port, spec in node.inputs.items():
            if spec.timer_ms is not None:
                timer = json.dumps(f"{node.id}.{port}.timer")
                lines.append(f"  {timer} [shape=circle, label={json.dumps(f'{spec.timer_ms:g} ms')}];")
                lines.append(f"  {timer} -> {json.dumps(node.id)} [style=dashed, label={json.dumps(port)}];")
    for lk in graph.links:
        label = f"{lk.src_output} -> {lk.dst_input}\n{lk.key}"
        q = _qos(lk.qos)
        if q != "default":
            label += f"\n{q}"
        lines.append(f"  {json.dumps(lk.src_node)} -> {json.dumps(lk.dst_node)} [label={json.dumps(label)}];")
    lines.append("}")
    return "\n".join(lines)


def as_json(graph: Graph) -> str:
    """The compiled graph itself (``Graph.from_dict`` reads it back; ``zflow run`` accepts it)."""
    return json.dumps(graph.to_dict(), indent=2)


FORMATS: dict[str, Callable[[Graph], str]] = {"text": text, "mermaid": mermaid, "dot": dot, "json": as_json}


def render(graph: Graph, fmt: str = "text") -> str:
    return FORMATS[fmt](graph)


__all__ = ["FORMATS", "as_json", "dot", "mermaid", "render", "text"]
