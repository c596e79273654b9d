"""Fencing on the data path: a daemon's node host that loses its router stops sending until
it knows it is still the current copy of its nodes.

While a host is cut off (a partitioned machine), its daemon cannot be told anything and the
cluster may re-place its nodes elsewhere under a newer generation. When the link comes back,
what the host sends would race its daemon's fence (which stops it): so the host pauses every
output the moment its session has no router (Zenoh has then closed the transport, and what was
queued in it went with it), and resumes only once the replicated instance records say that this
incarnation (``created``) still places its nodes on its daemon. A host that was moved away
stops, with no end of stream (its consumers are fed by the new copy).

The pause costs nothing per message: it sets each output's credit limit below what was sent,
the check every remote send already makes (``host.py``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import zenoh

from zflow import codec, keyexprs

log = logging.getLogger("zflow.host")
POLL_S = 0.1
ASK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Fence:
    """Which copy of its nodes a host is: set by the daemon that starts it."""

    daemon: str
    created: float
    generation: int

    def to_dict(self) -> dict[str, Any]:
        return {"daemon": self.daemon, "created": self.created, "generation": self.generation}

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> Fence | None:
        return None if not d else Fence(str(d["daemon"]), float(d["created"]), int(d["generation"]))


def still_current(fence: Fence, nodes: list[str], records: list[dict[str, Any]]) -> bool | None:
    """Whether the newest of ``records`` (copies of this host's instance record) still places
    ``nodes`` on the host's daemon for this incarnation; None when no copy answered."""
    copies = [r for r in records if isinstance(r, dict) and "created" in r]
    if not copies:
        return None
    newest = max(copies, key=lambda r: (r["created"], r.get("generation", 0), r.get("revision", 0),
                                        str(r.get("writer", ""))))
    if newest["created"] != fence.created or newest.get("state") in ("stopped", "deleted"):
        return False
    placement = newest.get("placement", {})
    return all(str(placement.get(n, "")).split("/", 1)[0] == fence.daemon for n in nodes)


class RouterWatch:
    """Watches a host's session for the loss of its router (on its own thread)."""

    def __init__(self, host: Any, fence: Fence):
        self.host = host
        self.fence = fence
        self.thread = threading.Thread(target=self._watch, name="fence", daemon=True)

    def start(self) -> None:
        if self.host.spec.session.mode != "client":  # a peer has no router to lose
            return
        # A newer generation written while this host runs (the race of a cut that heals while
        # the leader re-places): the record's put reaches the host before the new copy starts.
        self.host._subscribers.append(self.host.session.declare_subscriber(
            keyexprs.instance_record(self.host.graph.flow, self.host.graph.instance), self._on_record))
        self.thread.start()

    def _on_record(self, sample: Any) -> None:
        try:
            rec = codec.decode(sample.payload.to_bytes(), str(sample.encoding))
        except Exception:  # not a record: nothing to decide
            return
        if (isinstance(rec, dict) and int(rec.get("generation", 0)) > self.fence.generation
                and still_current(self.fence, self.host.spec.nodes, [rec]) is False):
            self.host.pause(True)
            log.warning("host of %s: generation %s placed its nodes elsewhere; stopping (no end of stream)",
                        ", ".join(self.host.spec.nodes), rec.get("generation"))
            self.host.stop()

    def _connected(self) -> bool | None:
        """Whether the session has a router; None once it is closed (the host is ending)."""
        try:
            return any(True for _ in self.host.session.info.routers_zid())
        except zenoh.ZError:
            return None

    def _watch(self) -> None:
        host = self.host
        while not host.stop_event.wait(POLL_S):
            connected = self._connected()
            if connected is None:
                return
            if connected:
                continue
            host.pause(True)
            log.warning("host of %s lost its router: outputs paused until its generation is confirmed",
                        ", ".join(host.spec.nodes))
            if not self._confirm():
                return
            host.pause(False)
            log.info("host of %s is still current (daemon %s): outputs resumed", ", ".join(host.spec.nodes),
                     self.fence.daemon)

    def _confirm(self) -> bool:
        """Wait for the router, then ask the records; False (and the host stopped) when moved away."""
        host = self.host
        key = keyexprs.instance_record(host.graph.flow, host.graph.instance)
        while not host.stop_event.wait(POLL_S):
            connected = self._connected()
            if connected is None:
                return False
            if not connected:
                continue
            records = []
            try:
                for reply in host.session.get(key, target=zenoh.QueryTarget.ALL,
                                              consolidation=zenoh.ConsolidationMode.NONE, timeout=ASK_TIMEOUT_S):
                    if reply.ok is not None:
                        records.append(codec.decode(reply.ok.payload.to_bytes(), str(reply.ok.encoding)))
            except zenoh.ZError:
                continue
            verdict = still_current(self.fence, host.spec.nodes, records)
            if verdict is None:
                continue
            if not verdict:
                log.warning("host of %s: a newer generation placed its nodes elsewhere; stopping "
                            "(no end of stream)", ", ".join(host.spec.nodes))
                host.stop()
            return verdict
        return False
