"""A node host: one process running one process group of a flow's nodes.

Data path, chosen for speed:

- a link to a node in another process is a Zenoh publisher → subscriber. ``block``: a bounded
  Rust-side FIFO channel, back-pressure reaches the producer through Zenoh's congestion control
  (every zflow session waits on a full queue as long as the consumer lives, see
  ``zflow.transport.session``), a reader thread per input blocks in ``recv()`` with the GIL
  released. ``drop_oldest``/``latest``: Zenoh's callback appends to a bounded deque (the
  oldest falls out) and never blocks; a reader thread takes from it; arrivals - taken - depth
  is exactly what was dropped;
- a link to a node in the same process is a direct call: no serialisation, no queue;
- an output is encoded and put on Zenoh only when someone outside the process listens
  (a remote consumer, or a tap found through the publisher's matching status).

End of stream is a Zenoh DELETE on the output's key: it travels behind the data on the same
key, so no sample is overtaken, and a dropping queue never drops it (it is a flag, not an
entry). A producer closes only once each consumer has acknowledged it, or is gone (its node's
liveliness token withdrawn): never on a timer while the consumer lives.

Statistics (messages in/out, drops per input, queue depth) are served per node on
``keyexprs.node_stats`` and put there once more when the host ends (``zflow.runtime.stats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import math
import mmap
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgpack
import zenoh

from zflow import codec, keyexprs, settings
from zflow.dataflow.graph import Graph, InputSpec, NodeSpec, OutputSpec, QoS
from zflow.errors import UserError
from zflow.process import StopSignal, die_with_parent, signal_exit_code
from zflow.runtime.api import Context, Message, Node
from zflow.runtime.fence import Fence, RouterWatch
from zflow.runtime.loader import load_node_class, node_config
from zflow.runtime.on_demand import hlc_now
from zflow.runtime.stats import InputStats, NodeStats
from zflow.transport.session import SessionOptions, make_config

log = logging.getLogger("zflow.host")

_PRIORITY = {
    1: zenoh.Priority.REAL_TIME,
    2: zenoh.Priority.INTERACTIVE_HIGH,
    3: zenoh.Priority.INTERACTIVE_LOW,
    4: zenoh.Priority.DATA_HIGH,
    5: zenoh.Priority.DATA,
    6: zenoh.Priority.DATA_LOW,
    7: zenoh.Priority.BACKGROUND,
}
_ENCODINGS = {codec.OCTET: zenoh.Encoding(codec.OCTET), codec.MSGPACK: zenoh.Encoding(codec.MSGPACK)}
_OCTET = _ENCODINGS[codec.OCTET]
_DELETE = zenoh.SampleKind.DELETE


@dataclass
class HostSpec:
    """Everything a host process needs, sent to it as JSON on stdin."""

    graph: Graph
    nodes: list[str]
    session: SessionOptions
    wait_start: bool = False
    fence: dict[str, Any] | None = None  # a daemon's host: which copy it is (zflow.runtime.fence)

    def to_json(self) -> str:
        return json.dumps({
            "graph": self.graph.to_dict(),
            "nodes": self.nodes,
            "session": self.session.to_json(),
            "wait_start": self.wait_start,
            "fence": self.fence,
        })

    @staticmethod
    def from_json(text: str) -> HostSpec:
        data = json.loads(text)
        return HostSpec(
            graph=Graph.from_dict(data["graph"]),
            nodes=list(data["nodes"]),
            session=SessionOptions.from_json(data["session"]),
            wait_start=bool(data.get("wait_start", False)),
            fence=data.get("fence"),
        )


def _qos_kwargs(qos: QoS) -> dict[str, Any]:
    return {
        "priority": _PRIORITY.get(qos.priority, zenoh.Priority.DATA),
        "congestion_control": zenoh.CongestionControl.BLOCK
        if qos.congestion_control == "block" else zenoh.CongestionControl.DROP,
        "reliability": zenoh.Reliability.RELIABLE
        if qos.reliability == "reliable" else zenoh.Reliability.BEST_EFFORT,
        "express": qos.express,
    }


def _queue_size(qos: QoS) -> int:
    return 1 if qos.policy == "latest" else max(1, qos.queue_size)


def _credit_grant(queue_size: int, message_bytes: int) -> int:
    """How many messages a ``block`` consumer lets its producer have in flight: its queue size,
    raised up to ``CREDIT_WINDOW_MAX`` messages or ``CREDIT_BYTES`` (from the size of the
    message in hand), whichever is fewer. A window of a few messages leaves the pipe between two
    processes mostly empty (each credit a round trip, each empty queue a thread wake-up): 64 B
    messages went 2.5x slower with 256; Zenoh's own buffers held about this much before."""
    return max(queue_size, min(CREDIT_WINDOW_MAX, CREDIT_BYTES // max(1, message_bytes)))


class _Closed(Exception):
    """The host is shutting down: a reader stops."""


class _ReplayOver(Exception):
    """The producer did not answer a ``block`` input's announcement: no replay to wait for."""


class _InputAck:
    """How far a ``block`` input got, kept where the host's restarted successor finds it.

    ``done[0]``: messages whose handler returned, over this input's incarnations, stored after
    each one in a memory-mapped file of the supervisor's per-child state directory (a store to
    memory: no system call, and it survives a SIGKILL). A restarted host announces it as
    ``resume``; the producer re-sends from the next message. ``resume`` -1: unknown (a first
    start, or no state directory): a restarted consumer is then re-sent from the producer's
    last credit, which may repeat what was finished after it."""

    def __init__(self, key: str, upstream: str, path: str | None, restarted: bool, grant: int):
        self.key = key
        self.upstream = upstream
        self.grant = grant
        self.announced = False
        self.replaying = False  # announced, the producer's answer not in yet
        self.resume = -1
        if path is None:
            self.done = memoryview(bytearray(8)).cast("Q")
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            found = os.fstat(fd).st_size == 8
            if not found:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)  # never closed: the view lives as long as the process
        finally:
            os.close(fd)
        self.done = memoryview(self._map).cast("Q")
        if not restarted:  # a first start (resume unknown: it may replace a node of another host)
            self.done[0] = 0
        elif found:
            self.resume = self.done[0]


class _DroppingQueue:
    """The queue of a ``drop_oldest``/``latest`` input, filled by Zenoh's callback.

    The callback never blocks (a slow consumer must not stall Zenoh's receive task) and does
    the least it can: count, append. The end of stream is a flag, so it never pushes the last
    value out. Drops are exact without a lock: ``arrived - taken - len(queue)``."""

    __slots__ = ("arrived", "closed", "end", "queue", "stats", "wake")

    def __init__(self, stats: InputStats):
        self.stats = stats
        self.queue: deque[Any] = deque(maxlen=stats.queue_size)
        self.arrived = 0
        self.end: Any = None  # the end-of-stream sample, once it came
        self.closed = False
        self.wake = threading.Event()

    def on_sample(self, sample: Any) -> None:
        if sample.kind == _DELETE:
            self.end = sample
        else:
            self.arrived += 1
            self.queue.append(sample)  # a full deque drops its oldest entry
        if not self.wake.is_set():
            self.wake.set()

    def recv(self) -> Any:
        """The oldest queued sample; the end-of-stream sample once the queue is drained (data
        is always queued before the end mark comes); ``_Closed`` when the host shuts down."""
        queue = self.queue
        while True:
            try:
                return queue.popleft()
            except IndexError:
                pass
            if self.end is not None and not queue:
                return self.end
            self.wake.clear()
            if not queue and self.end is None:
                if self.closed:
                    raise _Closed
                self.wake.wait(0.5)

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    def refresh(self) -> None:
        depth = len(self.queue)
        self.stats.depth = depth
        self.stats.dropped = max(0, self.arrived - self.stats.received - depth)


def _drop(value: Any, metadata: dict[str, Any] | None = None) -> None:
    """The sender of an output nobody listens to."""


class _Output:
    """One output port: direct calls to consumers in this process, a Zenoh publisher for the rest.

    ``send`` is the hot path: a closure rebuilt whenever the output's audience changes (a tap
    found or gone through the publisher's matching listener, wiring done), specialised for
    what is there, so an unheard output costs nothing and a lone consumer is a direct call.
    """

    __slots__ = ("allowed", "base", "counted", "ended", "frozen", "incarnation", "kept", "kept_from", "limit",
                 "listener", "local", "lock", "owner", "position", "publish", "publisher", "remote", "retired",
                 "send", "sent", "spec", "windows")

    def __init__(self, spec: OutputSpec, owner: _NodeRuntime):
        self.spec = spec
        self.owner = owner
        self.local: list[tuple[_NodeRuntime, str]] = []
        self.remote = False  # a consumer in another process: always publish
        self.publish = False
        self.publisher: Any = None
        self.listener: Any = None
        self.lock = threading.Lock()
        self.send: Callable[..., None] = _drop
        self.sent = 0  # messages put on Zenoh
        # Credits of remote ``block`` consumers, per (node, port): the queue size (the window
        # before any credit), the count ``sent`` may reach, where a restarted consumer started
        # over, its process's incarnation and those it replaced. ``sent`` may not pass ``limit``.
        self.windows: dict[tuple[str, str], int] = {}
        self.allowed: dict[tuple[str, str], int] = {}
        self.base: dict[tuple[str, str], int] = {}
        self.incarnation: dict[tuple[str, str], str] = {}
        self.retired: dict[tuple[str, str], set[str]] = {}
        self.limit: float = math.inf
        # Consumer counts are cumulative over a consumer's incarnations (``counted``); ``base``
        # maps them onto ``sent``: ``position`` = base + counted = messages it has finished.
        self.counted: dict[tuple[str, str], int] = {}
        self.position: dict[tuple[str, str], int] = {}
        # Retention (``block`` consumers only): the messages after ``kept_from`` that some consumer
        # has not finished, re-sent to its restarted successor; bounded by the credit window.
        self.kept: deque[Any] | None = None
        self.kept_from = 0
        # A consumer that will be restarted is gone: ``sent`` may not pass this until it is back.
        self.frozen: dict[tuple[str, str], int] = {}
        self.ended = False  # the end of stream was put

    def set_tapped(self, tapped: bool) -> None:
        with self.lock:
            self.publish = self.remote or tapped
            self._rebuild()

    def rebuild(self) -> None:
        with self.lock:
            self._rebuild()

    def _rebuild(self) -> None:
        delivers = [consumer.deliverer(port) for consumer, port in self.local]
        publish = _publisher_send(self) if self.publish and self.publisher is not None else None
        if not delivers:
            send = publish or _drop
        elif len(delivers) == 1 and publish is None:
            send = delivers[0]
        else:
            def send(value: Any, metadata: dict[str, Any] | None = None) -> None:
                for deliver in delivers:
                    deliver(value, metadata)
                if publish is not None:
                    publish(value, metadata)
        self.send = send
        self.owner.output_changed(self)


def _publisher_send(out: _Output) -> Callable[..., None]:
    put = out.publisher.put
    packb = msgpack.packb
    encode = codec.encode
    keep = out.kept.append if out.kept is not None else None  # kept before it is put

    def publish(value: Any, metadata: dict[str, Any] | None = None) -> None:
        out.sent += 1
        # a remote ``block`` consumer's queue is full (or the host is paused): wait for credit;
        # a host stopped meanwhile sends nothing more (a fenced copy must not, see fence.py)
        if out.sent > out.limit and not out.owner.host.await_credit(out):
            return
        if metadata is None and type(value) is bytes:
            if keep is not None:
                keep(value)
            put(value)  # the publisher's default encoding is octet-stream
            return
        payload, content_type = encode(value)
        encoding = _ENCODINGS[content_type]
        if metadata:
            attachment = packb(metadata, default=str)
            if keep is not None:
                keep((payload, encoding, attachment))
            put(payload, encoding=encoding, attachment=attachment)
        else:
            if keep is not None:
                keep((payload, encoding, None))
            put(payload, encoding=encoding)

    return publish


class _NodeRuntime:
    """One node inside the host: its instance, context, outputs and end-of-stream accounting."""

    def __init__(self, host: Host, spec: NodeSpec, cls: type[Node]):
        self.host = host
        self.spec = spec
        self.cls = cls
        self.outputs: dict[str, _Output] = {p: _Output(o, self) for p, o in spec.outputs.items()}
        self.lock = threading.RLock()
        # Feedback inputs (closing a cycle) do not hold the node open; once the others ended,
        # the node ends when its loop has been quiet for ``loop_idle`` (docs/dataflow.md, Cycles).
        self.open_inputs = {p for p, i in spec.inputs.items() if i.upstream is not None and not i.feedback}
        self.open_feedback = {p for p, i in spec.inputs.items() if i.upstream is not None and i.feedback}
        self.loop_idle = max((spec.inputs[p].qos.loop_idle for p in self.open_feedback), default=0.0)
        self.last_feedback = 0.0
        self._watching_loop = False
        # Inputs fed from other processes (in-process links are direct calls: no queue, no drop).
        self.input_stats: dict[str, InputStats] = {}
        self.dropping: dict[str, _DroppingQueue] = {}
        self.finished = threading.Event()
        self.done = False  # set once the node starts finishing: no more deliveries (hot path)
        self.ctx = Context(
            flow=host.graph.flow,
            instance=host.graph.instance,
            node=spec.id,
            config=node_config(spec),
            outputs=tuple(spec.outputs),
            put=self.put,
            now=host.now,
            stop_event=host.stop_event,
            session=host.session,
            open_session=lambda: zenoh.open(make_config(host.spec.session)),
        )
        self.node: Node = cls()
        self.on_input: Callable[..., Any] | None = getattr(self.node, "on_input", None)
        self._async_input = inspect.iscoroutinefunction(self.on_input)
        self._message = Message("", None)
        self.ctx.message = self._message
        self._single = next(iter(self.outputs.values())) if len(self.outputs) == 1 else None
        # ``emit`` sends a returned or yielded value: the single output's current sender.
        self.emit: Callable[..., None] = _drop if self._single is not None else self._emit_error
        self.deliver: Callable[[str, Any, dict[str, Any] | None], None] = self._deliver_locked
        self.single_feeder = False

    def use_single_feeder(self) -> None:
        """Only one thread ever delivers to this node: skip the lock on the hot path."""
        self.single_feeder = True
        self.deliver = self._deliver_unlocked

    @property
    def fast(self) -> bool:
        """Inputs can call a synchronous ``on_input`` straight, with no lock."""
        return self.single_feeder and self.on_input is not None and not self._async_input

    def output_changed(self, out: _Output) -> None:
        if out is self._single:
            self.emit = out.send

    # -- data out ---------------------------------------------------------------------------------
    def put(self, output: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        out = self.outputs.get(output)
        if out is None:
            raise KeyError(f"node {self.spec.id!r} has no output {output!r} (outputs: {sorted(self.outputs)})")
        out.send(value, metadata)

    def _emit_error(self, value: Any, metadata: dict[str, Any] | None = None) -> None:
        if not self.outputs:
            raise TypeError(f"node {self.spec.id!r} returned or yielded a value but declares no outputs; "
                            "add outputs: [out] to it in the descriptor, or return None")
        raise TypeError(
            f"node {self.spec.id!r} returned or yielded a value but has {len(self.outputs)} outputs; "
            "use ctx.put(output, value)"
        )

    # -- data in ----------------------------------------------------------------------------------
    def deliverer(self, port: str) -> Callable[..., None]:
        """A ``(value, metadata=None)`` function delivering to one input port, for producers in
        this process: the handler called straight when only one thread ever feeds this node."""
        if port in self.open_feedback:  # stamp the loop's last message (feedback inputs only)
            deliver = self.deliver

            def deliver_feedback(value: Any, metadata: dict[str, Any] | None = None) -> None:
                self.last_feedback = time.monotonic()
                deliver(port, value, metadata)
                self.last_feedback = time.monotonic()  # quiet counts from the end of the handling

            return deliver_feedback
        if not self.fast:
            deliver = self.deliver
            return lambda value, metadata=None: deliver(port, value, metadata)
        rt = self
        on_input = self.on_input
        ctx = self.ctx
        message = self._message

        def deliver_fast(value: Any, metadata: dict[str, Any] | None = None) -> None:
            if rt.done:
                return
            message.port = port
            message.value = value
            message._metadata = metadata
            result = on_input(port, value, ctx)  # type: ignore[misc]
            if result is not None:
                rt.emit(result)

        return deliver_fast

    def _deliver_unlocked(self, port: str, value: Any, metadata: dict[str, Any] | None) -> None:
        if self.done:
            return
        message = self._message
        message.port = port
        message.value = value
        message._metadata = metadata
        result = self.on_input(port, value, self.ctx)  # type: ignore[misc]
        if self._async_input:
            result = self.host.run_async(result)
        if result is not None:
            self.emit(result)

    def _deliver_locked(self, port: str, value: Any, metadata: dict[str, Any] | None) -> None:
        with self.lock:
            self._deliver_unlocked(port, value, metadata)

    def end_input(self, port: str) -> None:
        with self.lock:
            self.open_inputs.discard(port)
            self.open_feedback.discard(port)
            if self.open_inputs or self.done:
                return
            if self.open_feedback:  # only the loop is left: end once it has gone quiet
                if not self._watching_loop:
                    self._watching_loop = True
                    self.last_feedback = max(self.last_feedback, time.monotonic())
                    threading.Thread(target=self._end_when_loop_idle, name=f"loop-{self.spec.id}",
                                     daemon=True).start()
                return
            self._on_end()
        self.finish()

    def stats(self, final: bool = False) -> NodeStats:
        for queue in self.dropping.values():
            queue.refresh()
        return NodeStats(self.host.graph.flow, self.host.graph.instance, self.spec.id,
                         inputs=dict(self.input_stats),
                         outputs={p: o.sent for p, o in self.outputs.items()}, final=final)

    def _end_when_loop_idle(self) -> None:
        while not self.host.stop_event.wait(min(0.05, self.loop_idle)):
            with self.lock:
                if self.done or not self.open_feedback:
                    return  # ended otherwise: the loop's own end of stream came first
                if time.monotonic() - self.last_feedback < self.loop_idle:
                    continue
                self.open_feedback.clear()
                self._on_end()
            self.finish()
            return

    def _on_end(self) -> None:
        on_end = getattr(self.node, "on_end", None)
        if on_end is not None:
            result = on_end(self.ctx)
            if inspect.iscoroutine(result):
                self.host.run_async(result)

    def finish(self) -> None:
        """Mark the node done and signal end of stream on every output."""
        if self.done:
            return
        self.done = True  # no more deliveries to this node
        for out in self.outputs.values():
            for consumer, port in out.local:
                consumer.end_input(port)
            if out.publisher is not None:
                out.ended = True  # before the DELETE: a replay that follows it says the stream ended
                out.publisher.delete()
        # Finished only once every end of stream is out: the host closes its session as soon
        # as all its nodes are finished, and a DELETE after that would be lost.
        self.finished.set()
        self.host.node_finished()


class Host:
    """Runs a group of nodes until they finish, the flow is stopped, or a node fails."""

    def __init__(self, spec: HostSpec):
        self.graph = spec.graph
        self.spec = spec
        self.stop_event = threading.Event()
        self.stopping = False  # mirrors ``stop_event`` for the hot path
        self.signalled = 0  # the signal that stopped the host (SIGTERM, SIGINT), if one did
        self.done = threading.Event()
        self.failure: BaseException | None = None
        self.session: Any = None
        self.runtimes: dict[str, _NodeRuntime] = {}
        self._threads: list[threading.Thread] = []
        self._subscribers: list[Any] = []
        self._tokens: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receipts_due: set[tuple[str, str, str, str]] = set()
        self._receipts: set[tuple[str, str, str, str]] = set()
        self._receipts_changed = threading.Condition()
        self._gone_since: dict[str, float] = {}
        self._reported_gone: set[tuple[str, str]] = set()
        self.incarnation = os.urandom(6).hex()  # tells this process's credits from a predecessor's  # nodes of this instance whose token went, since when
        self._seen_alive: set[str] = set()
        self._loop_lock = threading.Lock()
        self.paused = False  # cut off from the router: send nothing until confirmed (fence.py)
        self._restartable: set[str] = set()  # nodes a restart policy brings back after a crash
        self._acks: dict[tuple[str, str], _InputAck] = {}  # this host's ``block`` inputs
        self._state_dir = settings.child_state_dir()  # kept across restarts (supervisor)
        self._restarted = settings.restarts() > 0

    # -- helpers for nodes ------------------------------------------------------------------------
    def now(self) -> int:
        return hlc_now(self.session)

    def run_async(self, coro: Any) -> Any:
        """Run a coroutine on the host's event loop thread and wait for its result."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._loop.run_forever, name="zflow-async", daemon=True)
                thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def node_finished(self) -> None:
        if all(rt.finished.is_set() for rt in self.runtimes.values()):
            self.done.set()

    def fail(self, node: str, exc: BaseException) -> None:
        if self.stopping and isinstance(exc, zenoh.ZError):
            return  # the session closed under a node while the flow was being stopped
        if self.failure is None:
            self.failure = exc
            if isinstance(exc, UserError):  # bad input met at run time: no traceback
                print(f"node {node!r} failed: {exc.render()}", file=sys.stderr, flush=True)
            else:
                print(f"node {node!r} failed:\n{''.join(traceback.format_exception(exc)).rstrip()}",
                      file=sys.stderr, flush=True)
        self.stop()

    # -- life cycle -------------------------------------------------------------------------------
    def run(self) -> int:
        self.session = zenoh.open(make_config(self.spec.session))
        try:
            self._build()
            start = threading.Event()
            if self.spec.wait_start:
                self._subscribers.append(self.session.declare_subscriber(
                    keyexprs.instance_ctl(self.graph.flow, self.graph.instance, "start"),
                    lambda _s: start.set()))
            else:
                start.set()
            self._subscribers.append(self.session.declare_subscriber(
                keyexprs.instance_ctl(self.graph.flow, self.graph.instance, "stop"),
                lambda _s: self.stop()))
            for node_id, rt in self.runtimes.items():
                key = keyexprs.node_stats(self.graph.flow, self.graph.instance, node_id)
                self._subscribers.append(self.session.declare_queryable(
                    key, lambda query, rt=rt, key=key: query.reply(key, rt.stats().to_json())))
            for node_id in self.runtimes:
                self._tokens.append(self.session.liveliness().declare_token(
                    keyexprs.node_alive(self.graph.flow, self.graph.instance, node_id)))
            fence = Fence.from_dict(self.spec.fence)
            if fence is not None:
                RouterWatch(self, fence).start()
            while not start.wait(0.05):
                if self.stopping:
                    return 0
            self._start_threads()
            if not self.runtimes:
                self.done.set()
            while not self.done.wait(0.2) and not self.stopping:
                pass
            if self.failure is None and not self.stopping:
                self._await_end_of_stream_receipts()
            return 1 if self.failure is not None else 0
        finally:
            self._shutdown()

    # -- end of stream receipts --------------------------------------------------------------------
    def _expect_receipts(self, mine: set[str]) -> None:
        """Closing a session right after the last put can lose the tail if Zenoh's flush at
        close gives up; so a host whose outputs feed other processes waits, before closing, until
        each consumer has received the end of stream (which travels behind all the data), or
        is gone: the consumers' liveliness tokens are watched from the start. The same watch
        lets a ``block`` producer hold still while a consumer that will be restarted is away,
        and a ``block`` consumer greet a producer that (re)appears with its count."""
        nodes = self.graph.nodes
        self._receipts_due = {  # not into a feedback input: its node ends before the loop does
            (lk.src_node, lk.src_output, lk.dst_node, lk.dst_input)
            for lk in self.graph.links if lk.src_node in mine and lk.dst_node not in mine
            and not nodes[lk.dst_node].inputs[lk.dst_input].feedback
        }
        self._restartable = {nid for nid, n in nodes.items()
                             if n.restart.policy == "on-failure" and n.restart.max_restarts > 0}
        crossing = [lk for lk in self.graph.links if (lk.src_node in mine) != (lk.dst_node in mine)
                    and nodes[lk.dst_node].inputs[lk.dst_input].qos.policy == "block"]
        if not self._receipts_due and not crossing:
            return

        def on_receipt(sample: Any) -> None:
            key = str(sample.key_expr)
            credit = keyexprs.parse_credit(key)
            if credit is not None:
                incarnation, taken, grant, *resume = sample.payload.to_bytes().decode().split(" ")
                self._on_credit(credit, incarnation, int(taken), int(grant),
                                int(resume[0]) if resume else None)
                return
            receipt = keyexprs.parse_eos_ack(key)
            if receipt is not None:
                with self._receipts_changed:
                    self._receipts.add(receipt)
                    self._receipts_changed.notify_all()

        def on_token(sample: Any) -> None:
            node = keyexprs.parse_node_alive(str(sample.key_expr))
            if node is None:
                return
            with self._receipts_changed:
                if sample.kind == _DELETE:
                    self._gone_since.setdefault(node, time.monotonic())
                    if node in self._restartable:
                        self._hold_for(node)
                else:
                    self._gone_since.pop(node, None)
                    self._seen_alive.add(node)
                self._receipts_changed.notify_all()
            if sample.kind != _DELETE:  # a producer (re)appeared: tell it where this consumer is
                for ack in list(self._acks.values()):  # (again announcing, if still unanswered)
                    if ack.upstream == node and ack.announced:
                        self._send_credit(ack.key, ack.done[0], ack.grant, ack.resume if ack.replaying else None)

        self._subscribers.append(self.session.declare_subscriber(
            keyexprs.eos_acks(self.graph.flow, self.graph.instance), on_receipt))
        self._subscribers.append(self.session.liveliness().declare_subscriber(
            keyexprs.node_alive(self.graph.flow, self.graph.instance), on_token, history=True))

    # -- credits: ``block`` across processes without blocking Zenoh ---------------------------------
    def _on_credit(self, credit: tuple[str, str, str, str], incarnation: str, taken: int, grant: int,
                   resume: int | None) -> None:
        """A consumer has finished ``taken`` messages (counted over its incarnations) and has room
        for ``grant`` more. A consumer process announces itself with ``resume``: how many its
        predecessors finished (-1: unknown). A restarted process (its node has a restart policy)
        that replaced a known one is re-sent what its predecessor had not finished (from the
        retention buffer), before this producer sends anything new; credits of replaced
        processes are ignored."""
        node, output, consumer, port = credit
        rt = self.runtimes.get(node)
        out = rt.outputs.get(output) if rt is not None else None
        who = (consumer, port)
        if out is None or who not in out.windows:
            return
        replay_from: int | None = None
        with self._receipts_changed:
            current = out.incarnation.get(who)
            if incarnation != current:
                if incarnation in out.retired.setdefault(who, set()):
                    return
                if current is None:  # first sight: whatever it finished before was not from us
                    out.base[who] = -taken
                elif consumer not in self._restartable:  # re-placed, not restarted: not held for,
                    out.retired[who].add(current)  # so not replayed; it counts from what is sent now
                    out.base[who] = out.sent - taken
                else:  # its restarted process took over: on from where the old one finished
                    out.retired[who].add(current)
                    finished = resume if resume is not None and resume >= 0 else out.counted.get(who, 0)
                    replay_from = out.base.get(who, 0) + finished
                    out.base[who] = replay_from - taken
                    out.frozen.setdefault(who, out.sent)  # nothing new before the replay
                out.incarnation[who] = incarnation
                out.position.pop(who, None)
            elif resume is None and who in out.frozen and consumer not in self._gone_since:
                del out.frozen[who]  # the same process is back (its token had lapsed): go on
            position = out.base.get(who, 0) + taken
            # credits sent from two threads (reader, re-announce) may cross: never step back
            if position >= out.position.get(who, -1):
                out.counted[who] = taken
                out.position[who] = position
                out.allowed[who] = position + grant
            self._trim(out)
            self._set_limit(out)
            self._receipts_changed.notify_all()
        if resume is not None:  # answer every announcement: the replay (maybe empty), then its end
            threading.Thread(target=self._replay, args=(out, who, replay_from),
                             name=f"replay:{consumer}.{port}", daemon=True).start()

    def _hold_for(self, node: str) -> None:
        """A consumer that its restart policy will bring back is gone: each output feeding it
        sends nothing more (what went out since it last finished is kept) until it is back."""
        for rt in self.runtimes.values():
            for out in rt.outputs.values():
                for who in out.windows:
                    if who[0] == node:
                        out.frozen.setdefault(who, out.sent)
                        self._set_limit(out)

    def _trim(self, out: _Output) -> None:
        """Forget the kept messages every consumer that may still need them has finished."""
        kept = out.kept
        if kept is None:
            return
        now = time.monotonic()
        target = min((out.position.get(who, 0) for who in out.windows if not self._gone(who[0], now)),
                     default=out.sent)
        while out.kept_from < target and kept:
            kept.popleft()
            out.kept_from += 1

    def _replay(self, out: _Output, who: tuple[str, str], start: int | None) -> None:
        """Re-send kept messages after ``start`` to one restarted consumer, on its own key (the
        others must not see them twice), then a DELETE there that ends the replay (and says
        whether the stream had ended); then the producer goes on."""
        key = keyexprs.replay(self.graph.flow, self.graph.instance, out.owner.spec.id, out.spec.port, *who)
        with self._receipts_changed:
            items: list[Any] = []
            if start is not None and out.kept is not None:
                if start < out.kept_from:  # cannot happen while trimming follows positions
                    log.warning("%s.%s: %d message(s) for restarted consumer %s.%s were no longer kept",
                                out.owner.spec.id, out.spec.port, out.kept_from - start, *who)
                items = list(itertools.islice(out.kept, max(0, start - out.kept_from), None))
        try:
            put = self.session.put
            block = zenoh.CongestionControl.BLOCK
            for item in items:
                if type(item) is bytes:
                    put(key, item, encoding=_OCTET, congestion_control=block)
                else:
                    put(key, item[0], encoding=item[1], attachment=item[2], congestion_control=block)
            # "end": the stream ended while the consumer was away (it may have missed the DELETE;
            # the producer was held, so the replay holds all the data). A first announcement was
            # subscribed before anything was sent: it reads the end in the stream itself.
            ended = start is not None and out.ended
            self.session.delete(key, attachment=b"end" if ended else None, congestion_control=block)
        except zenoh.ZError:
            return  # the session closed: the host is stopping
        if start is not None:  # the answer to a restarted process
            log.info("%s.%s: re-sent %d message(s) its restarted consumer %s.%s had not finished",
                     out.owner.spec.id, out.spec.port, len(items), *who)
        if start is None:
            return  # an answer to a first announcement: nothing was held
        with self._receipts_changed:
            out.frozen.pop(who, None)
            self._set_limit(out)
            self._receipts_changed.notify_all()

    def _gone(self, node: str, now: float) -> bool:
        """Not waited for any more: its token went a while ago and no restart will bring it back."""
        return node not in self._restartable and now - self._gone_since.get(node, now) > EOS_GONE_GRACE_S

    def pause(self, paused: bool) -> None:
        """Hold (or let go) every output that sends to other processes: a paused output's
        limit is below what it sent, so its next remote send waits in ``await_credit``."""
        with self._receipts_changed:
            self.paused = paused
            for rt in self.runtimes.values():
                for out in rt.outputs.values():
                    self._set_limit(out)
            self._receipts_changed.notify_all()

    def _set_limit(self, out: _Output) -> None:
        if self.paused:
            out.limit = -math.inf
            return
        now = time.monotonic()
        live = [min(out.allowed.get(who, window), out.frozen.get(who, math.inf))
                for who, window in out.windows.items() if not self._gone(who[0], now)]
        out.limit = min(live) if live else math.inf

    def await_credit(self, out: _Output) -> bool:
        """Wait until every live ``block`` consumer of ``out`` has room, however long it stalls,
        and while one that will be restarted is away; a consumer whose liveliness token is
        gone for good is not waited for (it says so once). False when the host stopped
        meanwhile: what was waiting is not sent."""
        start = time.monotonic()
        said = False
        with self._receipts_changed:
            while out.sent > out.limit and not self.stopping:
                self._receipts_changed.wait(0.2)
                self._set_limit(out)
                now = time.monotonic()
                for who in out.windows:
                    if self._gone(who[0], now) and who not in self._reported_gone:
                        self._reported_gone.add(who)
                        log.warning("consumer %s.%s of %s.%s is gone (its liveliness token was "
                                    "withdrawn, and it has no restart policy); no longer waiting for it",
                                    who[0], who[1], out.owner.spec.id, out.spec.port)
                if not said and now - start > EOS_PATIENCE_NOTE_S and out.sent > out.limit:
                    said = True
                    log.info("%s.%s waits for a stalled or restarting consumer (alive or to be "
                             "restarted, so waiting on)", out.owner.spec.id, out.spec.port)
        return not self.stopping

    def _send_credit(self, key: str, taken: int, grant: int, resume: int | None = None) -> None:
        text = f"{self.incarnation} {taken} {grant}" if resume is None else \
            f"{self.incarnation} {taken} {grant} {resume}"
        self.session.put(key, text.encode(), congestion_control=zenoh.CongestionControl.BLOCK, express=True)

    def _ack_end_of_stream(self, rt: _NodeRuntime, port: str) -> None:
        up = rt.spec.inputs[port].upstream
        if up is not None:
            self.session.put(keyexprs.eos_ack(self.graph.flow, self.graph.instance, up.node, up.output,
                                              rt.spec.id, port), b"",
                             congestion_control=zenoh.CongestionControl.BLOCK, express=True)

    def _await_end_of_stream_receipts(self) -> None:
        """Wait for every consumer's receipt while that consumer lives, however long it stalls.

        A consumer whose liveliness token is withdrawn (its host died or was stopped) is not
        waited for, after ``EOS_GONE_GRACE_S`` (a finished consumer's receipt, a put, can arrive
        after its token's withdrawal, a declaration); one never seen alive (it died before this
        host started) gets ``EOS_UNSEEN_GRACE_S`` to appear."""
        start = time.monotonic()
        said_waiting = False
        with self._receipts_changed:
            while not self.stopping:
                missing = self._receipts_due - self._receipts
                if not missing:
                    return
                now = time.monotonic()
                waited = now - start
                for receipt in sorted(missing):
                    consumer = receipt[2]
                    gone = self._gone(consumer, now)  # one to be restarted is waited for
                    unseen = consumer not in self._seen_alive and waited > EOS_UNSEEN_GRACE_S
                    if gone or unseen:
                        log.warning("consumer %s.%s is %s; not waiting for its end-of-stream receipt "
                                    "(what it had not received is lost with it)", consumer, receipt[3],
                                    "gone (its liveliness token was withdrawn)" if gone else
                                    f"not alive after {EOS_UNSEEN_GRACE_S:g}s")
                        self._receipts_due.discard(receipt)
                if not said_waiting and waited > EOS_PATIENCE_NOTE_S and self._receipts_due - self._receipts:
                    said_waiting = True
                    log.info("still waiting for the end-of-stream receipt of %s (alive, so waiting on)",
                             ", ".join(sorted(f"{d}.{i}" for _, _, d, i in self._receipts_due - self._receipts)))
                self._receipts_changed.wait(0.1)

    def stop(self) -> None:
        self.stopping = True
        self.stop_event.set()
        self.done.set()

    def _build(self) -> None:
        graph = self.graph
        mine = set(self.spec.nodes)
        for node_id in self.spec.nodes:
            spec = graph.nodes[node_id]
            self.runtimes[node_id] = _NodeRuntime(self, spec, load_node_class(spec.run, spec.base_dir))
        self._expect_receipts(mine)
        # Wire outputs: local consumers are direct calls, others go through Zenoh.
        for link in graph.links:
            if link.src_node not in mine:
                continue
            out = self.runtimes[link.src_node].outputs[link.src_output]
            if link.dst_node in mine:
                out.local.append((self.runtimes[link.dst_node], link.dst_input))
            else:
                out.remote = True
                qos = graph.nodes[link.dst_node].inputs[link.dst_input].qos
                if qos.policy == "block":
                    out.windows[(link.dst_node, link.dst_input)] = _queue_size(qos)
                    if out.kept is None:
                        out.kept = deque()
                    self._set_limit(out)
        for rt in self.runtimes.values():
            for out in rt.outputs.values():
                out.publisher = self.session.declare_publisher(
                    out.spec.key, encoding=_OCTET, **_qos_kwargs(out.spec.qos))

                def on_matching(status: Any, out: _Output = out) -> None:
                    out.set_tapped(bool(status.matching))

                out.listener = out.publisher.declare_matching_listener(on_matching)
                out.set_tapped(bool(out.publisher.matching_status.matching))
            rt.ctx.session = self.session
            result = rt.node.setup(rt.ctx)
            if inspect.iscoroutine(result):
                self.run_async(result)
        # Inputs fed from other processes: a subscriber with a bounded channel each.
        for rt in self.runtimes.values():
            for port, inp in rt.spec.inputs.items():
                if inp.upstream is not None and inp.upstream.node not in mine:
                    stats = rt.input_stats[port] = InputStats(inp.qos.policy, _queue_size(inp.qos))
                    if inp.qos.policy == "block":
                        # Credits keep at most queue_size messages in flight: the channel never
                        # fills, so Zenoh's receive task never waits on a stalled node.
                        sub = self.session.declare_subscriber(
                            inp.upstream.key, zenoh.handlers.FifoChannel(
                                max(stats.queue_size, CREDIT_WINDOW_MAX) + 2))
                        self._thread(f"in:{rt.spec.id}.{port}", self._read_input, rt, port, sub.recv,
                                     self._bytes_link(inp))
                    else:
                        queue = rt.dropping[port] = _DroppingQueue(stats)
                        sub = self.session.declare_subscriber(inp.upstream.key, queue.on_sample)
                        self._thread(f"in:{rt.spec.id}.{port}", self._read_input, rt, port, queue.recv,
                                     self._bytes_link(inp))
                    self._subscribers.append(sub)
                elif inp.timer_ms is not None:
                    self._thread(f"timer:{rt.spec.id}.{port}", self._run_timer, rt, port, inp)
        self._drop_needless_locks(mine)
        for rt in self.runtimes.values():  # senders specialised for the final wiring
            for out in rt.outputs.values():
                out.rebuild()

    def _drop_needless_locks(self, mine: set[str]) -> None:
        """A node fed by exactly one thread (one remote input, one timer, or one local producer
        that is itself single-threaded) needs no lock around its handler."""
        feeders: dict[str, set[str]] = {nid: set() for nid in self.runtimes}

        def origin(nid: str, seen: frozenset[str] = frozenset()) -> set[str]:
            if nid in seen:
                return {"cycle"}
            spec = self.graph.nodes[nid]
            out: set[str] = set()
            if spec.kind == "source":
                out.add(f"source:{nid}")
            for port, inp in spec.inputs.items():
                if inp.timer_ms is not None:
                    out.add(f"timer:{nid}.{port}")
                elif inp.upstream is not None:
                    if inp.upstream.node in mine:
                        out |= origin(inp.upstream.node, seen | {nid})
                    else:
                        out.add(f"in:{nid}.{port}")
            return out

        for nid, rt in self.runtimes.items():
            feeders[nid] = {f for f in origin(nid) if f != f"source:{nid}"}
            if len(feeders[nid]) == 1 and "cycle" not in feeders[nid]:
                rt.use_single_feeder()

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self._threads.append(threading.Thread(target=target, args=args, name=name, daemon=True))

    def _start_threads(self) -> None:
        for rt in self.runtimes.values():
            if rt.spec.kind == "source":
                self._thread(f"source:{rt.spec.id}", self._run_source, rt)
        for thread in self._threads:
            thread.start()

    def _bytes_link(self, inp: InputSpec) -> bool:
        """Both ends of the link are typed ``bytes``: the payload is the value, whatever its
        encoding says, so the reader need not look at the encoding."""
        up = inp.upstream
        if inp.type != "bytes" or up is None or up.node not in self.graph.nodes:
            return False
        out = self.graph.nodes[up.node].outputs.get(up.output)
        return out is not None and out.type == "bytes"

    def _read_input(self, rt: _NodeRuntime, port: str, recv: Callable[[], Any], bytes_only: bool = False) -> None:
        """Takes an input's samples from its queue (Zenoh's FIFO channel for ``block``, with
        credits back to the producer; the dropping deque otherwise) and hands them to the node.

        A ``block`` input first announces itself (with what its predecessors finished) and
        takes what the producer re-sends it on its replay key, then the live stream."""
        decode = codec.decode
        unpack = msgpack.unpackb
        octet = _OCTET
        deliver = rt.deliverer(port)  # the handler itself for a single-feeder synchronous node
        stats = rt.input_stats[port]
        up = rt.spec.inputs[port].upstream
        assert up is not None
        credit_key = keyexprs.credit(self.graph.flow, self.graph.instance, up.node, up.output, rt.spec.id, port)
        size = stats.queue_size
        ack = self._input_ack(rt.spec.id, port, up.node, credit_key, size) if stats.policy == "block" else None
        next_credit = max(1, size // 4) if ack is not None else math.inf
        send_credit = self._send_credit
        done = ack.done if ack is not None else memoryview(bytearray(8)).cast("Q")
        before = done[0]  # what this input's earlier incarnations finished
        receivers = [recv]
        try:
            if ack is not None:
                replay = self.session.declare_subscriber(
                    keyexprs.replay(self.graph.flow, self.graph.instance, up.node, up.output, rt.spec.id, port),
                    zenoh.handlers.FifoChannel(CREDIT_WINDOW_MAX + 2))
                self._subscribers.append(replay)
                receivers.insert(0, self._replay_reader(replay, f"{rt.spec.id}.{port}"))
                ack.replaying = True
                send_credit(credit_key, before, size, ack.resume)  # subscribed first: no reply missed
                ack.announced = True
            for receive in receivers:
                while True:
                    try:
                        sample = receive()
                    except (zenoh.ZError, _Closed):
                        return  # channel closed: the host is shutting down
                    except _ReplayOver:
                        ack.replaying = False  # type: ignore[union-attr]
                        break
                    raw = sample.payload.to_bytes()
                    if not raw and sample.kind == _DELETE:  # end of stream (a DELETE has no payload)
                        if receive is not recv and sample.attachment is None:
                            ack.replaying = False  # type: ignore[union-attr]
                            break  # the replay is over and the stream goes on: live data next
                        self._end_input(rt, port)
                        return
                    stats.received += 1
                    if stats.received >= next_credit:  # taken from the queue: room for that many more
                        grant = _credit_grant(size, len(raw))
                        next_credit = stats.received + max(1, grant // 4)
                        ack.grant = grant  # type: ignore[union-attr]
                        send_credit(credit_key, before + stats.received - 1, grant)  # the finished ones
                    value = raw if bytes_only or (encoding := sample.encoding) == octet else \
                        decode(raw, str(encoding))
                    attachment = sample.attachment
                    deliver(value, None if attachment is None else unpack(attachment.to_bytes()))
                    done[0] = before + stats.received  # finished: never re-sent to a successor
        except BaseException as exc:
            self.fail(rt.spec.id, exc)

    def _input_ack(self, node: str, port: str, upstream: str, key: str, size: int) -> _InputAck:
        path = os.path.join(self._state_dir, quote(f"{node}.{port}.done", safe="")) if self._state_dir else None
        ack = self._acks[(node, port)] = _InputAck(key, upstream, path, self._restarted, size)
        return ack

    def _replay_reader(self, sub: Any, name: str) -> Callable[[], Any]:
        """``recv`` of the replay key: what the producer re-sends, its end mark, or
        ``_ReplayOver`` if the producer says nothing for ``REPLAY_WAIT_S`` (it is gone)."""
        deadline = time.monotonic() + REPLAY_WAIT_S

        def receive() -> Any:
            nonlocal deadline
            while True:
                sample = sub.try_recv()
                if sample is not None:
                    deadline = time.monotonic() + REPLAY_WAIT_S
                    return sample
                if self.stopping:
                    raise _Closed
                if time.monotonic() > deadline:
                    log.warning("input %s: its producer did not answer in %gs; reading on without a replay",
                                name, REPLAY_WAIT_S)
                    raise _ReplayOver
                time.sleep(0.002)

        return receive

    def _end_input(self, rt: _NodeRuntime, port: str) -> None:
        rt.input_stats[port].ended = True
        self._ack_end_of_stream(rt, port)
        rt.end_input(port)

    def _run_timer(self, rt: _NodeRuntime, port: str, inp: InputSpec) -> None:
        interval = float(inp.timer_ms or 0) / 1000.0
        try:
            while not self.stop_event.wait(interval):
                rt.deliver(port, self.now(), None)
        except BaseException as exc:
            self.fail(rt.spec.id, exc)

    def _run_source(self, rt: _NodeRuntime) -> None:
        try:
            result = rt.node.run(rt.ctx)  # type: ignore[attr-defined]
            if inspect.isgenerator(result):
                out = rt._single
                # Only a remote consumer, always: bytes go straight to the publisher.
                put = out.publisher.put if out is not None and out.remote and not out.local else None
                keep = out.kept.append if out is not None and out.kept is not None else None
                for value in result:
                    if put is not None and type(value) is bytes:
                        out.sent += 1  # type: ignore[union-attr]
                        if out.sent > out.limit and not self.await_credit(out):  # type: ignore[union-attr, arg-type]
                            result.close()
                            break
                        if keep is not None:
                            keep(value)
                        put(value)
                    elif value is not None:
                        rt.emit(value)  # read each time: a tap found on the way changes it
                    if self.stopping:
                        result.close()
                        break
            elif inspect.isasyncgen(result):
                self.run_async(self._drain_async(rt, result))
            elif inspect.iscoroutine(result):
                self.run_async(result)
            # A source cut short by a stop (signal, stop signal, its daemon gone) has not ended
            # its stream: no end-of-stream mark, so consumers wait for its replacement.
            if not self.stopping:
                rt.finish()
        except BaseException as exc:
            self.fail(rt.spec.id, exc)

    async def _drain_async(self, rt: _NodeRuntime, agen: Any) -> None:
        async for value in agen:
            if value is not None:
                rt.emit(value)
            if self.stopping:
                break
        await agen.aclose()

    def _report_stats(self) -> None:
        """Log each node's queue figures and put its final statistics (``zflow run`` sums them)."""
        for rt in self.runtimes.values():
            stats = rt.stats(final=True)
            for port, inp in sorted(stats.inputs.items()):
                if inp.policy != "block":
                    log.info("node %s input %s (%s, queue %d): received %d, dropped %d",
                             rt.spec.id, port, inp.policy, inp.queue_size, inp.received, inp.dropped)
            with contextlib.suppress(Exception):
                self.session.put(keyexprs.node_stats(self.graph.flow, self.graph.instance, rt.spec.id),
                                 stats.to_json(), congestion_control=zenoh.CongestionControl.BLOCK)
        if self.runtimes:
            # A round trip through the router before the session closes, so the puts are out.
            with contextlib.suppress(Exception):
                for _ in self.session.liveliness().get(
                        keyexprs.node_alive(self.graph.flow, self.graph.instance), timeout=1.0):
                    pass

    def _shutdown(self) -> None:
        self.stopping = True
        self.stop_event.set()
        for rt in self.runtimes.values():
            for queue in rt.dropping.values():
                queue.close()
        # A teardown that hangs must not keep the flow alive: give up after a while, loudly.
        tearing: list[str] = []
        watchdog = threading.Timer(TEARDOWN_TIMEOUT_S, _abandon, (tearing,))
        watchdog.daemon = True
        watchdog.start()
        for rt in self.runtimes.values():
            tearing[:] = [rt.spec.id]
            try:
                result = rt.node.teardown(rt.ctx)
                if inspect.iscoroutine(result):
                    self.run_async(result)
            except Exception as exc:  # reported, and the host exits 1
                self.fail(rt.spec.id, exc)
        watchdog.cancel()
        self._report_stats()
        for token in self._tokens:
            with contextlib.suppress(Exception):
                token.undeclare()
        with contextlib.suppress(Exception):
            self.session.close()  # also wakes every reader blocked in recv()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=1.0)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


TEARDOWN_TIMEOUT_S = settings.teardown_timeout_s()
EOS_UNSEEN_GRACE_S = settings.eos_unseen_grace_s()
EOS_GONE_GRACE_S = 1.0
REPLAY_WAIT_S = 5.0  # a block input's announcement unanswered this long: its producer is gone
CREDIT_WINDOW_MAX = 8192
CREDIT_BYTES = 8 << 20
EOS_PATIENCE_NOTE_S = 10.0  # after this long, say once that a live consumer is being waited for


def _abandon(tearing: list[str]) -> None:
    print(f"node {tearing[0] if tearing else '?'!r}: teardown did not return within "
          f"{TEARDOWN_TIMEOUT_S:g}s; exiting without it", file=sys.stderr, flush=True)
    os._exit(1)


def stop_on_signals(host: Host) -> None:
    """SIGTERM/SIGINT stop the host. The handler only sets a flag that the main loop polls:
    taking a lock in a handler (``Event.set``) deadlocks when the signal lands while the main
    thread holds that lock, e.g. two signals in a row (the parent's SIGTERM and PDEATHSIG)."""

    def on_signal() -> None:
        host.signalled = stop.signum or 0
        host.stopping = True

    stop = StopSignal(on_request=on_signal)
    stop.install()


def main() -> int:
    """A host of the nodes its stdin's ``HostSpec`` names (the scale-to-zero mode of one workflow
    step starts as ``python -m zflow.runtime.on_demand``: a lighter import, a faster cold start)."""
    die_with_parent()
    logging.basicConfig(level=settings.log_level(),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        spec = HostSpec.from_json(sys.stdin.read())
        host = Host(spec)
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    stop_on_signals(host)
    try:
        code = host.run()
        if code == 0 and host.failure is not None:
            return 1  # a teardown failed
        # Stopped by a signal, not finished: say so (128 + signal, the shell's convention) so
        # the supervisor reports the host "stopped", never "exited" as if its sources had ended.
        return signal_exit_code(host.signalled) if code == 0 and host.signalled else code
    except UserError as exc:
        print(exc.render(), file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Zenoh's threads are gone with the closed session; never hang at exit
