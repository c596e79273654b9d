"""``timer``: a source that ticks every ``period_ms``.

Configuration:
    period_ms (float, > 0, default 1000): time between ticks; ticks are scheduled on an
        absolute grid, so a slow consumer does not make the timer drift.
    count (int, optional): stop after this many ticks (a finite source ends the flow);
        absent = tick until the flow stops.
    payload ("time" | "tick" | "both", default "time"): what each tick carries — the
        Zenoh HLC time in ns, the tick counter (from 0), or ``{"tick": n, "time": ns}``.

Ports: output ``out``.

Under a daemon the tick counter survives the timer being re-placed or restarted
(``operators._checkpoint.Sequence``): no tick number is ever sent twice; a crash skips at
most about 0.2 s of ticks, and the ticks due while no timer ran are not sent late. The grid
restarts at the resumed tick.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from operators._checkpoint import Sequence
from operators._config import parse_config
from operators.configs import TimerConfig
from zflow.runtime.api import Context, Source


class Timer(Source):
    outputs = ("out",)

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(TimerConfig, ctx, "timer")
        self.ticks = Sequence(ctx, rate=1000.0 / self.cfg.period_ms)
        if self.ticks.first:
            ctx.log.info("resuming at tick %d (checkpoint)", self.ticks.first)

    def run(self, ctx: Context) -> Iterator[Any]:
        cfg = self.cfg
        period = cfg.period_ms / 1000.0
        start = time.monotonic()
        tick = first = self.ticks.first
        while ctx.running and (cfg.count is None or tick < cfg.count):
            tick = self.ticks.take()
            delay = start + (tick - first) * period - time.monotonic()
            if delay > 0 and not ctx.sleep(delay):
                return
            if cfg.payload == "tick":
                yield tick
            elif cfg.payload == "time":
                yield ctx.now()
            else:
                yield {"tick": tick, "time": ctx.now()}
            tick += 1
