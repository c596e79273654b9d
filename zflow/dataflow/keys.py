"""Assigning key expressions to a graph's outputs (via :mod:`zflow.keyexprs`)."""

from __future__ import annotations

from dataclasses import replace

from zflow import keyexprs
from zflow.dataflow.graph import Graph, InputSpec, Link, NodeSpec, OutputSpec


def output_key(flow: str, instance: str, node: NodeSpec, port: str) -> str:
    """Every output, bridges included, is published on the data plane so any link can be tapped."""
    return keyexprs.data(flow, instance, node.id, port)


def rekey(graph: Graph, instance: str) -> Graph:
    """Recompute every output/link/input key for a new instance id."""
    keys: dict[tuple[str, str], str] = {}
    nodes: dict[str, NodeSpec] = {}
    for nid, node in graph.nodes.items():
        outs = {}
        for port, out in node.outputs.items():
            key = output_key(graph.flow, instance, node, port)
            keys[(nid, port)] = key
            outs[port] = replace(out, key=key)
        nodes[nid] = replace(node, outputs=outs)
    for nid, node in nodes.items():
        ins: dict[str, InputSpec] = {}
        for port, inp in node.inputs.items():
            up = inp.upstream
            if up is not None:
                up = replace(up, key=keys[(up.node, up.output)])
            ins[port] = replace(inp, upstream=up)
        nodes[nid] = replace(node, inputs=ins)
    links = tuple(replace(lk, key=keys[(lk.src_node, lk.src_output)]) for lk in graph.links)
    return replace(graph, instance=instance, nodes=nodes, links=links)


__all__ = ["Link", "OutputSpec", "output_key", "rekey"]
