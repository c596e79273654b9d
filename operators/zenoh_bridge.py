"""Bridges between a flow and the rest of the Zenoh world (``zenoh-subscribers`` sources and
``zenoh-publishers`` sinks in a descriptor, or the ``zenoh-subscribe``/``zenoh-publish`` built-ins).

Configuration:
    keys ({port: key expression}, required): what to subscribe to / publish on; the
        descriptor's ``zenoh-subscribers: {raw: "site1/**"}`` fills it in.
    queue_size (int >= 1, default 1024, subscribe only): with ``drop_oldest``, samples kept
        per key in a bounded Zenoh ring channel (``block`` forwards each sample as it comes and
        buffers in the flow's link instead).
    policy ("block" | "drop_oldest", default "block", subscribe only): when the flow falls
        behind, ``block`` pushes back on Zenoh (reliable publishers slow down), and
        ``drop_oldest`` keeps the newest ``queue_size`` samples.

What ``block`` guarantees on the way in: a Zenoh subscriber cannot push back on a remote
publisher beyond its own channel. The bridge subscribes on a session of its own (so waiting
never holds up the host's control and credit traffic) and forwards from Zenoh's callback, which
waits while the flow behind it is full; Zenoh's receive task then stops reading, the router's
queue towards the bridge fills, and an external publisher that uses ``CongestionControl.BLOCK``
and reliable transport slows down: nothing is lost, in order, while the flow behind the bridge
stalls for less than the Zenoh lease (10 s by default). A longer stall resets the bridge's
session and loses what was queued on it (measured: a 15 s stall behind the bridge with 600
samples of 64 KiB in flight delivered 391; a longer lease on the bridge's own session did not
help). A publisher with ``DROP`` (zenoh-python's default for ``session.put``) may lose samples
before they reach the bridge. Everything after the bridge is a
zflow link with zflow's guarantees. On the way out, ``zenoh-publish`` puts with ``BLOCK`` and
reliable transport, so a slow external subscriber slows the flow instead of losing data.

Payloads are decoded by the codec from their Zenoh encoding (msgpack, JSON, text; anything
else arrives as bytes); deletions on the subscribed keys are ignored.

Ports: one per key (the subscriber's outputs, the publisher's inputs).
"""

from __future__ import annotations

import threading
from typing import Any

import zenoh

from operators._config import parse_config
from operators.configs import PublishConfig, SubscribeConfig
from zflow import codec
from zflow.runtime.api import Context, Sink, Source

_DELETE = zenoh.SampleKind.DELETE
_ZBYTES = zenoh.Encoding.ZENOH_BYTES  # zenoh-python's default: raw bytes, as octet-stream
_ENCODINGS = {codec.OCTET: zenoh.Encoding(codec.OCTET), codec.MSGPACK: zenoh.Encoding(codec.MSGPACK)}
_RAW = (_ZBYTES, _ENCODINGS[codec.OCTET])  # payloads that are the value itself


class ZenohSubscribe(Source):
    """Emits every sample put on the configured key expressions, on the key's port."""

    outputs = ("out",)

    def setup(self, ctx: Context) -> None:
        """Subscribe before the flow is ready, so nothing put after start-up is missed."""
        cfg = self.cfg = parse_config(SubscribeConfig, ctx, "zenoh-subscribe")

        self.error: BaseException | None = None
        self.started = threading.Event()
        self.bad = 0
        self.own = ctx.open_session() if ctx.open_session is not None else None
        session = self.own if self.own is not None else ctx.session
        if cfg.policy == "block":
            # Forward from Zenoh's callback, on the bridge's own session: no thread hop, and
            # waiting in it (the flow is full) is exactly the push-back ``block`` asks for.
            self.subs = {port: session.declare_subscriber(key, self._forwarder(ctx, port))
                         for port, key in cfg.keys.items()}
        else:
            self.subs = {port: session.declare_subscriber(key, zenoh.handlers.RingChannel(cfg.queue_size))
                         for port, key in cfg.keys.items()}

    def run(self, ctx: Context) -> None:
        self.started.set()
        readers = [] if self.cfg.policy == "block" else [
            threading.Thread(target=self._read, args=(ctx, port, sub), daemon=True,
                             name=f"zenoh-subscribe:{ctx.node}.{port}") for port, sub in self.subs.items()]
        for reader in readers:
            reader.start()
        while self.error is None and ctx.sleep(0.1):
            pass
        if self.error is not None:
            raise self.error

    def _forwarder(self, ctx: Context, port: str) -> Any:
        decode, put, started = codec.decode, ctx.put, self.started

        def on_sample(sample: Any) -> None:
            while not started.is_set():  # samples before the flow starts wait (and push back)
                if not ctx.sleep(0.05):
                    return
            if sample.kind == _DELETE:
                return
            encoding = sample.encoding
            try:
                value = sample.payload.to_bytes() if encoding in _RAW else \
                    decode(sample.payload.to_bytes(), str(encoding))
            except Exception as exc:  # the outside world sent garbage: skip it, say so
                self._skipped(ctx, sample, exc)
                return
            try:
                put(port, value)
            except BaseException as exc:
                if ctx.running and self.error is None:
                    self.error = exc

        return on_sample

    def _skipped(self, ctx: Context, sample: Any, exc: Exception) -> None:
        self.bad += 1
        if self.bad & (self.bad - 1) == 0:  # 1st, 2nd, 4th, 8th... bad sample
            ctx.log.warning("%s: skipped %d undecodable sample(s) on %s (last: %s)",
                            ctx.node, self.bad, sample.key_expr, exc)

    def teardown(self, ctx: Context) -> None:
        # Undeclaring a subscriber while its reader is blocked in recv() raises "Already
        # borrowed"; closing the session undeclares them all and ends the readers.
        self.subs = {}
        own, self.own = getattr(self, "own", None), None
        if own is not None:
            own.close()

    def _read(self, ctx: Context, port: str, sub: Any) -> None:
        decode, put = codec.decode, ctx.put
        try:
            while True:
                try:
                    sample = sub.recv()
                except zenoh.ZError:
                    return
                if sample.kind == _DELETE:
                    continue
                try:
                    value = decode(sample.payload.to_bytes(), str(sample.encoding))
                except Exception as exc:  # the outside world sent garbage: skip it, say so
                    self._skipped(ctx, sample, exc)
                    continue
                put(port, value)
        except BaseException as exc:
            self.error = exc


class ZenohPublish(Sink):
    """Puts every input value on the key expression configured for its port."""

    inputs = ("in",)

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(PublishConfig, ctx, "zenoh-publish")
        self._pubs = {port: ctx.session.declare_publisher(
            key, encoding=_ENCODINGS[codec.OCTET], congestion_control=zenoh.CongestionControl.BLOCK,
            reliability=zenoh.Reliability.RELIABLE)
            for port, key in self.cfg.keys.items()}

    def on_input(self, port: str, value: Any, ctx: Context) -> None:
        if type(value) is bytes:  # the publisher's default encoding is octet-stream
            self._pubs[port].put(value)
            return
        payload, content_type = codec.encode(value)
        self._pubs[port].put(payload, encoding=_ENCODINGS[content_type])

    def teardown(self, ctx: Context) -> None:
        for pub in getattr(self, "_pubs", {}).values():
            pub.undeclare()
