"""Reading what the fault nodes recorded and judging it per link.

A link's record is the ordered list of ``(epoch, seq)`` its sink saw. Within one epoch (one run
of the source) seq must go up by exactly one: a repeat is a duplicate, a step back a reordering,
a jump a loss (kept as ranges). An epoch that reappears after a newer one began is *stale*: a
source that should have been fenced off (a returning daemon resuming an old node).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LinkReport:
    """What one link delivered, against what was sent."""

    link: str
    policy: str = "block"
    received: int = 0
    sent: int | None = None  # messages the source says it sent in its last epoch
    duplicates: int = 0
    reordered: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)  # inclusive seq ranges never seen
    epochs: int = 0
    stale: int = 0
    dropped_counted: int | None = None  # what the runtime says it dropped on this link
    # ``block`` across a consumer crash (docs/dataflow.md): the message being handled at the
    # instant of the kill may come again, once, right after itself; one per kill, nothing more.
    crashes: int = 0

    @property
    def lost_count(self) -> int:
        return sum(b - a + 1 for a, b in self.lost)

    @property
    def exactly_once_in_order(self) -> bool:
        return not (self.duplicates or self.reordered or self.lost or self.stale)

    def problems(self) -> list[str]:
        """What is wrong for this link's policy, in words (empty: the link kept its promise)."""
        out = []
        if self.duplicates > self.crashes:
            allowed = f" ({self.crashes} allowed: one per consumer crash)" if self.crashes else ""
            out.append(f"{self.duplicates} duplicate(s){allowed}")
        if self.reordered:
            out.append(f"{self.reordered} out of order")
        if self.stale:
            out.append(f"{self.stale} from a stale source")
        if self.policy == "block":
            if self.lost:
                out.append(f"{self.lost_count} lost: {_ranges(self.lost)}")
        elif self.dropped_counted is None:
            out.append(f"{self.lost_count} dropped, none counted (no drop count reported)")
        elif self.dropped_counted != self.lost_count:
            out.append(f"{self.lost_count} dropped but {self.dropped_counted} counted")
        return out

    def summary(self) -> str:
        sent = "?" if self.sent is None else str(self.sent)
        verdict = "; ".join(self.problems()) or "ok"
        return f"{self.link} [{self.policy}]: {self.received}/{sent} received, {verdict}"


def _ranges(ranges: list[tuple[int, int]], limit: int = 6) -> str:
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:limit])
    return text + (f" (+{len(ranges) - limit} more)" if len(ranges) > limit else "")


def read_record(path: Path) -> list[tuple[str, int]]:
    """The ``epoch seq`` lines a sink wrote; a line cut by a SIGKILL is ignored."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out.append((parts[0], int(parts[1])))
    return out


def read_sent(path: Path) -> tuple[str, int] | None:
    """The source's last ``epoch seq`` (None before it sent anything)."""
    if not path.exists():
        return None
    parts = path.read_text().split()
    return (parts[0], int(parts[1])) if len(parts) == 2 else None


def judge(link: str, record: list[tuple[str, int]], sent: tuple[str, int] | None = None,
          policy: str = "block", first_expected: int = 0, crashes: int = 0) -> LinkReport:
    """Judge one link's record. ``sent`` (the source's last ``epoch seq``) makes a lost tail
    visible; without it only gaps between received messages count. A duplicate is a message
    seen again right after itself (anything else out of place is a reordering); ``crashes``
    (SIGKILLs of a consumer on the link) allows that many of them."""
    rep = LinkReport(link, policy, received=len(record), crashes=crashes)
    order: list[str] = []
    last: dict[str, int] = {}
    for epoch, seq in record:
        if epoch not in last:
            order.append(epoch)
            expected = first_expected
            if seq > expected:
                rep.lost.append((expected, seq - 1))
            last[epoch] = seq
            continue
        if epoch != order[-1]:
            rep.stale += 1
            continue
        prev = last[epoch]
        if seq == prev:
            rep.duplicates += 1
        elif seq < prev:
            rep.reordered += 1
        else:
            if seq > prev + 1:
                rep.lost.append((prev + 1, seq - 1))
            last[epoch] = seq
    rep.epochs = len(order)
    if sent is not None:
        epoch, top = sent
        rep.sent = top + 1
        seen_top = last.get(epoch, first_expected - 1)
        if top > seen_top:
            rep.lost.append((seen_top + 1, top))
    return rep


def read_stats_drops(path: Path, port: str = "in") -> int | None:
    """The drop count of ``port`` in a sink's ``<node>.stats.json`` (None when none was reported).

    The expected reply of the per-node statistics queryable (issue 8):
    ``{"inputs": {"<port>": {"received": n, "dropped": n, ...}}, ...}``."""
    if not path.exists():
        return None
    data: Any = json.loads(path.read_text() or "{}")
    try:
        return int(data["inputs"][port]["dropped"])
    except (KeyError, TypeError, ValueError):
        return None


_UNSET: Any = object()


def judge_sink(directory: Path, source: str, sink: str, port: str = "in", policy: str = "block",
               link: str | None = None, sent: tuple[str, int] | None = _UNSET, crashes: int = 0) -> LinkReport:
    """Judge the link from ``source`` to ``sink.port`` from their files under ``directory``.

    ``sent`` defaults to what the source noted last; an endless source stopped with its flow
    has messages in flight when the sink stops, so pass what it had noted a moment before."""
    if sent is _UNSET:
        sent = read_sent(directory / f"{source}.sent")
    rep = judge(link or f"{source}->{sink}.{port}", read_record(directory / f"{sink}.{port}.seq"),
                sent, policy, crashes=crashes)
    if policy != "block":
        rep.dropped_counted = read_stats_drops(directory / f"{sink}.stats.json", port)
    return rep
