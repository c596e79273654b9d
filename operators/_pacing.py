"""Pacing replays and simulators against the wall clock.

``speed`` is the ratio of event time to wall time: 0 emits as fast as possible, 1 follows
the recorded timestamps in real time, N replays N times faster. Pacing follows the gap to
the previous event (never negative), so a file whose rows jump back in time (TMY3 months
come from different years) keeps going instead of stalling.
"""

from __future__ import annotations

import time

from zflow.runtime.api import Context


class Pacer:
    def __init__(self, ctx: Context, speed: float):
        self.ctx = ctx
        self.speed = float(speed)
        self._last: float | None = None
        self._target = 0.0

    def wait(self, event_time: float | None) -> bool:
        """Block until ``event_time`` is due; returns False once the flow is stopping."""
        if self.speed <= 0 or event_time is None:
            return self.ctx.running
        if self._last is None:
            self._last = event_time
            self._target = time.monotonic()
            return self.ctx.running
        self._target += max(0.0, event_time - self._last) / self.speed
        self._last = event_time
        delay = self._target - time.monotonic()
        if delay > 0:
            return self.ctx.sleep(delay)
        return self.ctx.running
