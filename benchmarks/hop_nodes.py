"""Nodes for benchmarks/hop.py: a paced or flat-out byte source and a measuring sink.

Both sides record the CPU time of their whole process (every thread, Zenoh's included) over
the messages they handle, as the raw zenoh-python side of the benchmark does."""

from __future__ import annotations

import json
import struct
import time

import numpy as np

import zflow


def paced(n: int, rate: float):
    """Yield ``n`` times at ``rate`` per second (sleeping, then spinning the last 0.4 ms);
    the raw zenoh-python publisher of benchmarks/hop.py paces itself with it too."""
    period = 1.0 / rate
    start = time.perf_counter()
    for i in range(n):
        target = start + i * period
        while (now := time.perf_counter()) < target:
            if target - now > 0.0005:
                time.sleep(target - now - 0.0004)
        yield i


class Blast(zflow.Source):
    """Emits ``n`` payloads of ``size`` bytes; ``rate`` msg/s (0 = flat out). The first 8 bytes
    carry the send time (ns) for one-way latency. Writes its CPU time to ``out`` + ``.src``."""

    def run(self, ctx):
        n, size, rate = int(ctx.config["n"]), int(ctx.config["size"]), float(ctx.config.get("rate", 0))
        body = bytes(max(0, size - 8))
        pack = struct.Struct("<q").pack
        cpu = time.process_time()
        if rate <= 0:
            stamp = pack(time.time_ns())
            payload = stamp + body
            for _ in range(n):
                yield payload
        else:
            for _ in paced(n, rate):
                yield pack(time.time_ns()) + body
        with open(ctx.config["out"] + ".src", "w") as f:
            json.dump({"cpu_s": time.process_time() - cpu}, f)


class Measure(zflow.Sink):
    """Counts payloads, records receive times, writes rate and latency percentiles at the end."""

    def setup(self, ctx):
        self.n = 0
        self.first = 0
        self.last = 0
        self.cpu = 0.0
        self.lat: list[int] = []
        self.keep_latency = bool(ctx.config.get("latency", False))
        self.unpack = struct.Struct("<q").unpack_from

    def on_input(self, port, value, ctx):
        now = time.time_ns()
        if self.n == 0:
            self.first = now
            self.cpu = time.process_time()
        self.last = now
        self.n += 1
        if self.keep_latency:
            self.lat.append(now - self.unpack(value)[0])

    def on_end(self, ctx):
        result = {"n": self.n, "seconds": (self.last - self.first) / 1e9,
                  "cpu_s": time.process_time() - self.cpu}
        if self.lat:
            lat = np.array(self.lat[len(self.lat) // 10:]) / 1e3  # skip warm-up
            result["p50_us"] = float(np.percentile(lat, 50))
            result["p99_us"] = float(np.percentile(lat, 99))
        with open(ctx.config["out"], "w") as f:
            json.dump(result, f)
