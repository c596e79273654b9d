"""The host of an on-demand workflow step (``python -m zflow.workflows.host``).

Warm steps and triggers run on the runtime (:mod:`zflow.runtime`); an on-demand step runs
here: it first collects the messages its activator kept while it was scaled to zero,
acknowledges each message once handled, and exits after ``--idle-exit`` seconds without
work (scale to zero). Messages are de-duplicated by (port, run, branch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import queue
import sys
import time
from typing import Any

import msgpack
import zenoh

from zflow import codec, keyexprs, settings
from zflow.dataflow.graph import Graph, NodeSpec
from zflow.process import StopSignal, die_with_parent
from zflow.transport.session import SessionOptions, open_session

log = logging.getLogger("zflow.workflows.host")
_BLOCK = zenoh.CongestionControl.BLOCK  # a run's messages are never dropped


class NodeContext:
    """The node API's ``ctx`` (flow, instance, node, config, log, now, put) on a Zenoh session."""

    def __init__(self, session: Any, graph: Graph, spec: NodeSpec):
        self.session = session
        self.flow = graph.flow
        self.instance = graph.instance
        self.node = spec.id
        self.config = dict(spec.config)
        self.log = logging.getLogger(f"zflow.node.{spec.id}")
        self._pubs = {port: session.declare_publisher(out.key, congestion_control=_BLOCK) for port, out in spec.outputs.items()}

    def now(self) -> int:
        return time.time_ns()

    def put(self, port: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        del metadata
        payload, ctype = codec.encode(value)
        self._pubs[port].put(payload, encoding=ctype)


def _load_class(spec: NodeSpec) -> Any:
    module = importlib.import_module(spec.run.target)
    return getattr(module, spec.run.attr or "")


def serve(graph: Graph, node_id: str, opts: SessionOptions, activator: bool = False,
          idle_exit: float | None = None, stop: StopSignal | None = None) -> int:
    spec = graph.nodes[node_id]
    with open_session(opts) as session:
        ctx = NodeContext(session, graph, spec)
        node = _load_class(spec)()
        if hasattr(node, "setup"):
            node.setup(ctx)
        try:
            return _serve_inputs(session, graph, spec, node, ctx, activator, idle_exit, stop or StopSignal())
        finally:
            if hasattr(node, "teardown"):
                node.teardown(ctx)


def _serve_inputs(session: Any, graph: Graph, spec: NodeSpec, node: Any, ctx: NodeContext,
                  activator: bool, idle_exit: float | None, stop: StopSignal) -> int:
    inbox: queue.SimpleQueue[tuple[str, bytes, str]] = queue.SimpleQueue()
    subs = []
    for port, inp in spec.inputs.items():
        if inp.upstream is None:
            continue

        def on_sample(sample: Any, port: str = port) -> None:
            if sample.kind == zenoh.SampleKind.DELETE:
                return  # end of stream from a runtime host: an on-demand step outlives streams
            inbox.put((port, sample.payload.to_bytes(), str(sample.encoding)))

        subs.append(session.declare_subscriber(inp.upstream.key, on_sample))
    ack_pub = None
    if activator:
        ack_pub = session.declare_publisher(keyexprs.activator(graph.flow, graph.instance, spec.id, "ack"),
                                           congestion_control=_BLOCK)
        for reply in session.get(keyexprs.activator(graph.flow, graph.instance, spec.id, "pending"), timeout=5):
            if reply.ok is not None:
                for port, payload, ctype in msgpack.unpackb(reply.ok.payload.to_bytes()):
                    inbox.put((port, payload, ctype))
    token = session.liveliness().declare_token(keyexprs.node_alive(graph.flow, graph.instance, spec.id))
    seen: set[tuple[str, str, str]] = set()
    idle_since = time.monotonic()
    try:
        while not stop.is_set():
            try:
                port, payload, ctype = inbox.get(timeout=0.2)
            except queue.Empty:
                if idle_exit and time.monotonic() - idle_since >= idle_exit:
                    return 0  # scale to zero
                continue
            value = codec.decode(payload, ctype)
            ident = (port, str(value.get("run")), str(value.get("branch", ""))) if isinstance(value, dict) else None
            if ident is not None and activator:
                if ident in seen:
                    continue
                seen.add(ident)
            try:
                node.on_input(port, value, ctx)
            except Exception:
                log.exception("node %s failed on input %s", spec.id, port)
            if ack_pub is not None and ident is not None:
                ack_pub.put(msgpack.packb(list(ident)))
            idle_since = time.monotonic()
        return 0
    finally:
        token.undeclare()
        for s in subs:
            s.undeclare()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zflow.workflows.host")
    parser.add_argument("--graph", required=True, help="compiled graph JSON file")
    parser.add_argument("--node", required=True)
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--activator", action="store_true")
    parser.add_argument("--idle-exit", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    stop = StopSignal().install()
    die_with_parent()  # no on-demand step outlives its runner
    with open(args.graph, encoding="utf-8") as f:
        graph = Graph.from_dict(json.load(f))
    opts = SessionOptions(mode="client", connect=args.connect)
    os.environ[settings.CONNECT] = ",".join(args.connect)  # actions that open their own session
    try:
        return serve(graph, args.node, opts, args.activator, args.idle_exit, stop)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
