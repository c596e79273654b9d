"""``timer``: a source that ticks every ``period_ms``.

Configuration:
    period_ms (float, > 0, default 1000): time between ticks; ticks are scheduled on an
        absolute grid, so a slow consumer does not make the timer drift.
    count (int, optional): stop after this many ticks (a finite source ends the flow);
        absent = tick until the flow stops.
    payload ("time" | "tick" | "both", default "time"): what each tick carries — the
        Zenoh HLC time in ns, the tick counter (from 0), or ``{"tick": n, "time": ns}``.

Ports: output ``out``.

Under a daemon the tick counter survives the timer being re-placed or restarted: before it
emits a block of ticks it writes, as its checkpoint, the first tick after that block (the
daemons' replicated storage keeps it); a new run starts at the checkpoint. No tick number is
ever sent twice; a crash skips at most the rest of the block (about 0.2 s of ticks), and the
ticks due while no timer ran are not sent late. The grid restarts at the resumed tick.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from operators._checkpoint import Checkpoint
from operators._config import parse_config
from operators.configs import TimerConfig
from zflow.runtime.api import Context, Source

CHECKPOINT_EVERY_S = 0.2


class Timer(Source):
    outputs = ("out",)

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(TimerConfig, ctx, "timer")
        self.checkpoint = Checkpoint(ctx)
        saved = self.checkpoint.load(lambda copies: max(copies, key=lambda c: int(c.get("next", 0))))
        self.first = int(saved.get("next", 0)) if saved else 0
        if self.first:
            ctx.log.info("resuming at tick %d (checkpoint)", self.first)

    def run(self, ctx: Context) -> Iterator[Any]:
        cfg = self.cfg
        period = cfg.period_ms / 1000.0
        block = max(1, math.ceil(CHECKPOINT_EVERY_S / period))  # ticks per checkpoint write
        start = time.monotonic()
        tick = first = self.first
        reserved = tick
        while ctx.running and (cfg.count is None or tick < cfg.count):
            if tick >= reserved:
                reserved = tick + block
                self.checkpoint.save({"next": reserved})
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
