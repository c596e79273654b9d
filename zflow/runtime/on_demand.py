"""The on-demand (scale-to-zero) mode of the node host: ``python -m zflow.runtime.on_demand``.

Warm steps and triggers run in the ordinary host loop; an on-demand workflow step runs here:
it first collects the messages its activator kept while it was scaled to zero, acknowledges
each message once handled, and exits after ``--idle-exit`` seconds without work (scale to
zero). Messages are de-duplicated by (port, run, branch). The node, its context (HLC time,
metadata in the attachment), its loading and the process path (parent death, stop signals)
are the runtime host's own; only the input loop differs, and the host's hot path is untouched. It starts
as its own module because it imports less than the host (a cold start waits for it).
"""

from __future__ import annotations

import argparse
import inspect
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
from zflow.runtime.api import Context, Message
from zflow.runtime.loader import load_node_class, node_config
from zflow.transport.session import SessionOptions, make_config, open_session

log = logging.getLogger("zflow.runtime.on_demand")
_BLOCK = zenoh.CongestionControl.BLOCK  # a run's messages are never dropped
_ENCODINGS = {codec.OCTET: zenoh.Encoding(codec.OCTET), codec.MSGPACK: zenoh.Encoding(codec.MSGPACK)}


def hlc_now(session: Any) -> int:
    """Zenoh HLC time of ``session`` in nanoseconds since the Unix epoch (``ctx.now``)."""
    return int(session.new_timestamp().get_time().timestamp() * 1e9)


def node_context(session: Any, graph: Graph, spec: NodeSpec, opts: SessionOptions) -> Context:
    """The runtime's node ``Context`` for a step that publishes straight on Zenoh."""
    pubs = {port: session.declare_publisher(out.key, congestion_control=_BLOCK) for port, out in spec.outputs.items()}

    def put(port: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        payload, ctype = codec.encode(value)
        attachment = msgpack.packb(metadata, default=str) if metadata else None
        pubs[port].put(payload, encoding=_ENCODINGS[ctype], attachment=attachment)

    return Context(flow=graph.flow, instance=graph.instance, node=spec.id, config=node_config(spec),
                   outputs=tuple(spec.outputs), put=put, now=lambda: hlc_now(session), session=session,
                   open_session=lambda: zenoh.open(make_config(opts)))


def _call(result: Any) -> None:
    if inspect.iscoroutine(result):
        import asyncio

        asyncio.run(result)


def serve(graph: Graph, node_id: str, opts: SessionOptions, activator: bool = False,
          idle_exit: float | None = None, stop: StopSignal | None = None) -> int:
    spec = graph.nodes[node_id]
    with open_session(opts) as session:
        ctx = node_context(session, graph, spec, opts)
        node = load_node_class(spec.run)()
        if hasattr(node, "setup"):
            _call(node.setup(ctx))
        try:
            return _serve_inputs(session, graph, spec, node, ctx, activator, idle_exit, stop or StopSignal())
        finally:
            if hasattr(node, "teardown"):
                _call(node.teardown(ctx))


def _serve_inputs(session: Any, graph: Graph, spec: NodeSpec, node: Any, ctx: Context,
                  activator: bool, idle_exit: float | None, stop: StopSignal) -> int:
    inbox: queue.SimpleQueue[tuple[str, bytes, str, bytes | None]] = queue.SimpleQueue()
    subs = []
    for port, inp in spec.inputs.items():
        if inp.upstream is None:
            continue

        def on_sample(sample: Any, port: str = port) -> None:
            if sample.kind == zenoh.SampleKind.DELETE:
                return  # end of stream from a runtime host: an on-demand step outlives streams
            attachment = sample.attachment
            inbox.put((port, sample.payload.to_bytes(), str(sample.encoding),
                       None if attachment is None else attachment.to_bytes()))

        subs.append(session.declare_subscriber(inp.upstream.key, on_sample))
    ack_pub = None
    if activator:
        ack_pub = session.declare_publisher(keyexprs.activator(graph.flow, graph.instance, spec.id, "ack"),
                                           congestion_control=_BLOCK)
        for reply in session.get(keyexprs.activator(graph.flow, graph.instance, spec.id, "pending"), timeout=5):
            if reply.ok is not None:
                for port, payload, ctype in msgpack.unpackb(reply.ok.payload.to_bytes()):
                    inbox.put((port, payload, ctype, None))
    token = session.liveliness().declare_token(keyexprs.node_alive(graph.flow, graph.instance, spec.id))
    seen: set[tuple[str, str, str]] = set()
    idle_since = time.monotonic()
    try:
        while not stop.is_set():
            try:
                port, payload, ctype, attachment = inbox.get(timeout=0.2)
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
            ctx.message = Message(port, value, metadata=None if attachment is None else msgpack.unpackb(attachment))
            try:
                _call(node.on_input(port, value, ctx))
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
    parser = argparse.ArgumentParser(prog="python -m zflow.runtime.on_demand")
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
    return serve(graph, args.node, opts, args.activator, args.idle_exit, stop)


if __name__ == "__main__":
    sys.exit(main())
