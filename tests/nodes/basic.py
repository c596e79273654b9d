"""Small nodes used by runtime tests."""

import json
import os
import time

import zflow


@zflow.source
def count(ctx):
    for i in range(int(ctx.config.get("n", 10))):
        yield {"i": i, "node": ctx.node}


@zflow.operator
def double(value, ctx):
    return {**value, "i": value["i"] * 2}


class Collect(zflow.Sink):
    """Appends every value to the JSONL file named in config.path."""

    def setup(self, ctx):
        self.file = open(ctx.config["path"], "a")  # noqa: SIM115

    def on_input(self, port, value, ctx):
        delay = float(ctx.config.get("delay", 0))
        if delay:
            time.sleep(delay)
        self.file.write(json.dumps(value) + "\n")
        self.file.flush()

    def teardown(self, ctx):
        self.file.close()


@zflow.operator
def crash_once(value, ctx):
    """Fails on the first run (marker file absent), passes on the restart."""
    marker = ctx.config["marker"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("boom (on purpose)")
    return value


@zflow.source
def forever(ctx):
    i = 0
    while ctx.sleep(float(ctx.config.get("period", 0.01))):
        yield {"i": i}
        i += 1


@zflow.source
def slow_count(ctx):
    for i in range(int(ctx.config.get("n", 10))):
        if not ctx.sleep(float(ctx.config.get("period", 0.02))):
            return
        yield {"i": i}


@zflow.source
def burst(ctx):
    """Emits n values flat out (for QoS tests)."""
    for i in range(int(ctx.config.get("n", 100))):
        yield {"i": i}


@zflow.source
async def async_count(ctx):
    import asyncio

    for i in range(int(ctx.config.get("n", 10))):
        await asyncio.sleep(0)
        yield {"i": i}


@zflow.operator
async def async_triple(value, ctx):
    import asyncio

    await asyncio.sleep(0)
    return {**value, "i": value["i"] * 3}


@zflow.source
def arrays(ctx):
    import numpy as np

    for i in range(int(ctx.config.get("n", 5))):
        yield {"i": i, "a": np.full((2, 3), i, dtype=np.float32)}


class ArrayStats(zflow.Operator):
    """Checks arrays arrive as numpy arrays and reports dtype, shape and sum, with HLC time."""

    def on_input(self, port, value, ctx):
        a = value["a"]
        return {"i": value["i"], "dtype": str(a.dtype), "shape": list(a.shape), "sum": float(a.sum()),
                "t": ctx.now()}


class Ticks(zflow.Operator):
    """Counts timer ticks and forwards data; ends the stream after ``limit`` ticks are seen."""

    inputs = ("tick", "in")

    def setup(self, ctx):
        self.ticks = 0

    def on_input(self, port, value, ctx):
        if port == "tick":
            self.ticks += 1
            ctx.put("out", {"tick": self.ticks, "t": value, "node": ctx.node, "flow": ctx.flow})


@zflow.source
def blobs(ctx):
    """Byte payloads; every third goes with metadata."""
    for i in range(int(ctx.config.get("n", 10))):
        payload = i.to_bytes(4, "little") * 3
        if i % 3:
            yield payload
        else:
            ctx.put("out", payload, {"i": i})


@zflow.operator
def describe(value, ctx):
    """A JSON-able account of the value received and its metadata."""
    return {"type": type(value).__name__, "hex": value.hex() if isinstance(value, bytes) else None,
            "meta": dict(ctx.message.metadata)}
