"""On-demand workflow steps are a mode of the runtime host (issue 9, item 2): the same node
context as every other node, so metadata travels with a put and ``now`` is the session's HLC."""

from __future__ import annotations

import threading
from pathlib import Path

import msgpack

from zflow.runtime.api import Context
from zflow.runtime.on_demand import node_context
from zflow.transport.session import SessionOptions
from zflow.workflows.workflow import load_workflow
from zflow.workflows.workflow_compiler import to_graph

DATA = Path(__file__).parent / "workflow_data"


def test_an_on_demand_step_puts_metadata_and_reads_hlc_time(router, zsession):
    graph = to_graph(load_workflow(DATA / "on-demand.yaml"))
    spec = graph.nodes["b"]
    port, out = next(iter(spec.outputs.items()))
    got: list[object] = []
    arrived = threading.Event()

    def on_sample(sample: object) -> None:
        att = sample.attachment  # type: ignore[attr-defined]
        got.append(None if att is None else msgpack.unpackb(att.to_bytes()))
        arrived.set()

    sub = zsession.declare_subscriber(out.key, on_sample)
    try:
        ctx = node_context(zsession, graph, spec, SessionOptions(mode="client", connect=[router.endpoint]))
        assert isinstance(ctx, Context)
        ctx.put(port, {"run": "r1", "y": 1}, {"trace": "t-1"})
        assert arrived.wait(10.0)
        assert got == [{"trace": "t-1"}]  # the old on-demand host dropped metadata on put
        before = zsession.new_timestamp().get_time()
        stamp = ctx.now()
        after = zsession.new_timestamp().get_time()
        assert before.timestamp() * 1e9 <= stamp <= after.timestamp() * 1e9 + 1
    finally:
        sub.undeclare()
