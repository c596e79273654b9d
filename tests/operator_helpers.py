"""Calling a built-in operator directly, without the runtime: a context that collects puts."""

from __future__ import annotations

from typing import Any

from zflow import Context


class Harness:
    """One node instance, its context, and everything it put (``self.out[port]``)."""

    def __init__(self, cls: type, config: dict[str, Any] | None = None, outputs=("out",), node: str = "n"):
        self.out: dict[str, list[Any]] = {p: [] for p in outputs}
        self.ctx = Context(flow="f", instance="i", node=node, config=config or {}, outputs=tuple(outputs),
                           put=lambda port, value, meta: self.out[port].append(value))
        self.node = cls()
        self.node.setup(self.ctx)

    def run(self) -> list[Any]:
        """Drain a source's generator (values it yields land on its single output)."""
        for value in self.node.run(self.ctx):
            self.out[next(iter(self.out))].append(value)
        return self.out[next(iter(self.out))]

    def feed(self, values, port: str = "in", end: bool = True) -> dict[str, list[Any]]:
        for value in values:
            result = self.node.on_input(port, value, self.ctx)
            if result is not None:
                self.out[next(iter(self.out))].append(result)
        if end:
            self.node.on_end(self.ctx)
        return self.out
