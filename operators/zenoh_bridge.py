"""Bridges between a flow and the rest of the Zenoh world (``zenoh-subscribers`` sources and
``zenoh-publishers`` sinks in a descriptor)."""

from __future__ import annotations

import queue
from typing import Any

from zflow import codec
from zflow.runtime.api import Context, Sink, Source


class ZenohSubscribe(Source):
    """Emits every sample put on the configured key expressions (``config.keys``: port -> key)."""

    outputs = ("out",)

    def run(self, ctx: Context) -> None:
        keys: dict[str, str] = ctx.config["keys"]
        pending: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=int(ctx.config.get("queue_size", 1024)))
        subs = []
        for port, key in keys.items():
            def on_sample(sample: Any, port: str = port) -> None:
                value = codec.decode(sample.payload.to_bytes(), str(sample.encoding))
                pending.put((port, value))
            subs.append(ctx.session.declare_subscriber(key, on_sample))
        try:
            while ctx.running:
                try:
                    port, value = pending.get(timeout=0.1)
                except queue.Empty:
                    continue
                ctx.put(port, value)
        finally:
            for sub in subs:
                sub.undeclare()


class ZenohPublish(Sink):
    """Puts every input value on the configured key expression (``config.keys``: port -> key)."""

    inputs = ("in",)

    def setup(self, ctx: Context) -> None:
        self._pubs = {port: ctx.session.declare_publisher(key) for port, key in ctx.config["keys"].items()}

    def on_input(self, port: str, value: Any, ctx: Context) -> None:
        payload, content_type = codec.encode(value)
        self._pubs[port].put(payload, encoding=content_type)

    def teardown(self, ctx: Context) -> None:
        for pub in getattr(self, "_pubs", {}).values():
            pub.undeclare()
