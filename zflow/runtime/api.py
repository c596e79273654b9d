"""The node API: what a person writing a source, operator or sink sees.

A simple map is five lines::

    import zflow

    @zflow.operator
    def celsius(value, ctx):
        return {**value, "temp_c": (value["temp_f"] - 32) / 1.8}

Classes (:class:`Source`, :class:`Operator`, :class:`Sink`) give hooks (``setup``,
``on_input``, ``on_end``, ``teardown``) and several ports; any hook may be ``async``.
Function nodes become classes, so the runtime only ever deals with classes.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar


class Message:
    """The input being handled (``ctx.message``): port, value and metadata.

    Valid during the handler call only: the runtime reuses one object per node so the hot
    path allocates nothing (``metadata`` is made on first access); copy what you keep."""

    __slots__ = ("_metadata", "port", "timestamp", "value")

    def __init__(self, port: str, value: Any, timestamp: int | None = None,
                 metadata: dict[str, Any] | None = None):
        self.port = port
        self.value = value
        self.timestamp = timestamp
        self._metadata = metadata

    @property
    def metadata(self) -> dict[str, Any]:
        """The sender's metadata (the Zenoh attachment); an empty dict when there is none."""
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any] | None) -> None:
        self._metadata = value

    def __repr__(self) -> str:
        return (f"Message(port={self.port!r}, value={self.value!r}, timestamp={self.timestamp!r}, "
                f"metadata={self.metadata!r})")


class Context:
    """What a node can see and do: ids, configuration, logging, time and ``put``.

    The runtime builds one per node; ``put`` is wired to the node's outputs (Zenoh
    publishers, or direct calls for consumers in the same process).
    """

    def __init__(
        self,
        *,
        flow: str,
        instance: str,
        node: str,
        config: dict[str, Any] | None = None,
        outputs: tuple[str, ...] = (),
        put: Callable[[str, Any, dict[str, Any] | None], None] | None = None,
        now: Callable[[], int] | None = None,
        stop_event: threading.Event | None = None,
        session: Any = None,
        open_session: Callable[[], Any] | None = None,
    ):
        self.flow = flow
        self.instance = instance
        self.node = node
        self.config: dict[str, Any] = dict(config or {})
        self.outputs = outputs
        self.log = logging.getLogger(f"zflow.node.{node}")
        self.message: Message | None = None
        self.session = session  # the node host's Zenoh session, for advanced nodes
        # Opens another session to the same Zenoh network, closed by the node: for a subscriber
        # that may block its session (a bridge pushing back on an external publisher) without
        # blocking the host's control and credit traffic.
        self.open_session = open_session
        self._put = put
        self._now = now
        self._stop = stop_event or threading.Event()

    def put(self, output: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        """Send ``value`` on an output port (``metadata`` travels in the Zenoh attachment)."""
        if self._put is None:
            raise RuntimeError("this context is not attached to a running node")
        self._put(output, value, metadata)

    def now(self) -> int:
        """Zenoh HLC time in nanoseconds since the Unix epoch."""
        if self._now is not None:
            return self._now()
        import time

        return time.time_ns()

    @property
    def running(self) -> bool:
        """False once the flow is stopping: long-running sources should return."""
        return not self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the flow stops first; returns ``running``."""
        return not self._stop.wait(seconds)


class Node:
    """Base of every node class. ``inputs``/``outputs`` are defaults for the descriptor."""

    kind: ClassVar[str] = "operator"
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()

    def setup(self, ctx: Context) -> Any:
        """Called once before any data flows."""

    def teardown(self, ctx: Context) -> Any:
        """Called once when the node stops (finished, failed or stopped)."""


class Source(Node):
    """Produces data. ``run`` yields values for its single output (or calls ``ctx.put``);
    returning ends the stream, and the flow ends when every finite source has ended."""

    kind = "source"
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    def run(self, ctx: Context) -> Any:
        raise NotImplementedError


class Operator(Node):
    """Transforms data. A value returned by ``on_input`` goes to the single output."""

    kind = "operator"
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    def on_input(self, port: str, value: Any, ctx: Context) -> Any:
        raise NotImplementedError

    def on_end(self, ctx: Context) -> Any:
        """All inputs have ended; a last chance to flush (``ctx.put`` still works)."""


class Sink(Operator):
    """Consumes data; has no outputs."""

    kind = "sink"
    outputs: ClassVar[tuple[str, ...]] = ()


def _ports(value: str | list[str] | tuple[str, ...] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return (value,) if isinstance(value, str) else tuple(value)


def _function_node(base: type[Node], fn: Callable[..., Any], inputs: Any, outputs: Any) -> type[Node]:
    """Wrap a function as a node class, keeping its name, module and docstring."""
    attrs: dict[str, Any] = {
        "__module__": fn.__module__,
        "__doc__": fn.__doc__,
        "__qualname__": fn.__qualname__,
        "inputs": _ports(inputs, base.inputs),
        "outputs": _ports(outputs, base.outputs),
        "function": staticmethod(fn),
    }
    if base is Source:
        if inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn):
            async def run_async(self: Any, ctx: Context) -> Any:
                return fn(ctx) if inspect.isasyncgenfunction(fn) else await fn(ctx)
            attrs["run"] = (lambda self, ctx: fn(ctx)) if inspect.isasyncgenfunction(fn) else run_async
        else:
            attrs["run"] = lambda self, ctx: fn(ctx)
    elif inspect.iscoroutinefunction(fn):
        async def on_input_async(self: Any, port: str, value: Any, ctx: Context) -> Any:
            return await fn(value, ctx)
        attrs["on_input"] = on_input_async
    else:
        attrs["on_input"] = lambda self, port, value, ctx: fn(value, ctx)
    return type(fn.__name__, (base,), attrs)


def _decorator(base: type[Node]) -> Callable[..., Any]:
    def decorate(fn: Callable[..., Any] | None = None, *, inputs: Any = None, outputs: Any = None) -> Any:
        if fn is None:
            return lambda f: _function_node(base, f, inputs, outputs)
        return _function_node(base, fn, inputs, outputs)

    decorate.__name__ = base.__name__.lower()
    decorate.__doc__ = f"Turn a function into a {base.__name__} node (``@zflow.{decorate.__name__}``)."
    return decorate


source = _decorator(Source)
operator = _decorator(Operator)
sink = _decorator(Sink)
