"""Building small graphs by hand for runtime tests (independent of the descriptor compiler)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from zflow import keyexprs
from zflow.dataflow.graph import (
    Graph,
    InputSpec,
    Link,
    NodeSpec,
    OutputSpec,
    QoS,
    RestartPolicy,
    RunSpec,
    Upstream,
)


def node(nid: str, kind: str, target: str, *, attr: str | None = None, inputs=(), outputs=(),
         config: dict[str, Any] | None = None, group: str | None = None,
         restart: RestartPolicy | None = None, builtin: bool = False) -> NodeSpec:
    run = RunSpec(kind="builtin", target=target) if builtin else RunSpec(kind="python", target=target, attr=attr)
    return NodeSpec(
        id=nid, kind=kind, run=run,  # type: ignore[arg-type]
        inputs={p: InputSpec(port=p) for p in inputs},
        outputs={p: OutputSpec(port=p, key="") for p in outputs},
        config=config or {}, group=group, restart=restart or RestartPolicy(),
    )


def graph(flow: str, nodes: list[NodeSpec], links: list[tuple[str, str, str, str]],
          qos: dict[tuple[str, str], QoS] | None = None, instance: str = "t1") -> Graph:
    """Wire nodes with (src, output, dst, input) links; keys from zflow.keyexprs."""
    qos = qos or {}
    by_id = {n.id: n for n in nodes}
    keyed = {}
    for n in nodes:
        outs = {p: replace(o, key=keyexprs.data(flow, instance, n.id, p)) for p, o in n.outputs.items()}
        keyed[n.id] = replace(n, outputs=outs)
    out_links = []
    for src, out, dst, inp in links:
        key = keyexprs.data(flow, instance, src, out)
        q = qos.get((dst, inp), QoS())
        d = keyed[dst]
        d_inputs = dict(d.inputs)
        d_inputs[inp] = InputSpec(port=inp, upstream=Upstream(src, out, key), qos=q)
        keyed[dst] = replace(d, inputs=d_inputs)
        out_links.append(Link(src, out, dst, inp, key, q))
    del by_id
    return Graph(flow=flow, instance=instance, nodes=keyed, links=tuple(out_links))


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 40.0) -> Any:
    """Poll until ``probe`` returns something truthy and return it: a bound on waiting for a
    condition (never a fixed sleep, never a timing claim); AssertionError naming ``what`` after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
