"""Checkpoints of sources, kept by the daemons' replicated storage (``zflow/daemon/replica.py``).

Only under a daemon (``ZFLOW_DAEMON_ID`` set): a flow run by ``zflow run`` has no storage to
keep them, so nothing is asked or written there. ``Sequence`` numbers what a source sends
(ticks, rows) so that a re-placed or restarted source never sends a number twice.
"""

from __future__ import annotations

import time
from typing import Any

import zenoh

from zflow import codec, keyexprs, settings
from zflow.runtime.api import Context

LOAD_TIMEOUT = 3.0
AHEAD_S = 0.2  # how far ahead a sequence reserves: at most this much is skipped after a crash
MAX_BLOCK = 100_000


class Checkpoint:
    """One node's checkpoint: a small codec map under ``zflow/ctl/checkpoint/<flow>/<instance>/<node>``."""

    def __init__(self, ctx: Context):
        self.session = ctx.session
        self.key = keyexprs.checkpoint(ctx.flow, ctx.instance, ctx.node)
        self.enabled = self.session is not None and settings.daemon_id() is not None

    def load(self) -> list[dict[str, Any]]:
        """Every replica's copy (none on a first start, or where no daemon keeps checkpoints)."""
        if not self.enabled:
            return []
        copies = []
        for reply in self.session.get(self.key, target=zenoh.QueryTarget.ALL,
                                      consolidation=zenoh.ConsolidationMode.NONE, timeout=LOAD_TIMEOUT):
            if reply.ok is not None:
                value = codec.decode(reply.ok.payload.to_bytes(), str(reply.ok.encoding))
                if isinstance(value, dict):
                    copies.append(value)
        return copies

    def save(self, value: dict[str, Any]) -> None:
        if self.enabled:
            payload, enc = codec.encode(value)
            self.session.put(self.key, payload, encoding=zenoh.Encoding(enc))


class Sequence:
    """Numbers 0, 1, 2... handed out at most once across restarts. Before a number past the
    reserved end is taken, the end moves ``AHEAD_S`` worth of numbers ahead (at the rate seen so
    far, or ``rate`` per second) and is checkpointed; a new run starts at the saved end. So no
    number is ever taken twice, and a crash skips at most one reservation."""

    def __init__(self, ctx: Context, rate: float | None = None):
        self.checkpoint = Checkpoint(ctx)
        self.first = max((int(c.get("next", 0)) for c in self.checkpoint.load()), default=0)
        self.next = self.end = self.first
        self.rate = rate
        self._mark = (self.first, time.monotonic())

    def take(self) -> int:
        n = self.next
        if n >= self.end and self.checkpoint.enabled:
            self.end = n + self._block(n)
            self.checkpoint.save({"next": self.end})
        self.next = n + 1
        return n

    def _block(self, n: int) -> int:
        now = time.monotonic()
        rate = self.rate
        if rate is None:  # as seen since the last reservation
            count, since = self._mark
            rate = (n - count) / max(now - since, 1e-3)
            self._mark = (n, now)
        return max(1, min(MAX_BLOCK, int(rate * AHEAD_S + 0.999)))
