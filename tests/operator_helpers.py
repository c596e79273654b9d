"""Calling a built-in operator directly, without the runtime: a context that collects puts."""

from __future__ import annotations

from typing import Any

from operators._tables import batch_metadata
from zflow import Context, Message


class Harness:
    """One node instance, its context, and everything it put (``self.out[port]``, ``self.meta[port]``)."""

    def __init__(self, cls: type, config: dict[str, Any] | None = None, outputs=("out",), node: str = "n"):
        self.out: dict[str, list[Any]] = {p: [] for p in outputs}
        self.meta: dict[str, list[Any]] = {p: [] for p in outputs}
        self.ctx = Context(flow="f", instance="i", node=node, config=config or {}, outputs=tuple(outputs),
                           put=self._put)
        self.node = cls()
        self.node.setup(self.ctx)

    def _put(self, port: str, value: Any, metadata: dict[str, Any] | None) -> None:
        self.out[port].append(value)
        self.meta[port].append(metadata or {})

    def run(self) -> list[Any]:
        """Drain a source (values it yields land on its single output, as the runtime does)."""
        first = next(iter(self.out))
        for value in self.node.run(self.ctx):
            self._put(first, value, None)
        return self.out[first]

    def feed(self, values, port: str = "in", end: bool = True, batches: bool = False) -> dict[str, list[Any]]:
        """Call ``on_input`` per value (``batches``: each value is a column batch), then ``on_end``."""
        for value in values:
            meta = batch_metadata(len(next(iter(value.values())))) if batches else {}
            self.ctx.message = Message(port, value, None, meta)
            result = self.node.on_input(port, value, self.ctx)
            if result is not None:
                self._put(next(iter(self.out)), result, None)
        self.ctx.message = None
        if end:
            self.node.on_end(self.ctx)
        return self.out
