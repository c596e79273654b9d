"""Instance records: what a daemon persists so that a restart resumes what it was running.

Every daemon involved in an instance holds the whole record (graph, placement, policy,
events); ``revision`` grows with each change so a daemon coming back adopts the newest copy.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OnLoss = str  # "replace" | "stop" | "ignore"
ON_LOSS = ("replace", "stop", "ignore")
MAX_EVENTS = 200


@dataclass
class InstanceRecord:
    flow: str
    instance: str
    graph: dict[str, Any]
    placement: dict[str, str]  # node -> "daemon/pool"
    policy: str = "weighted"
    on_daemon_loss: OnLoss = "replace"
    state: str = "loaded"  # loaded | running | stopped
    revision: int = 0
    trusted: list[str] | None = None  # daemons whose token was verified (None: open cluster)
    signature: dict[str, str] | None = None  # the deployer's, over flow, instance and graph (signing.py)
    events: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.flow}/{self.instance}"

    def daemons(self) -> set[str]:
        return {p.split("/", 1)[0] for p in self.placement.values()}

    def nodes_on(self, daemon: str) -> list[str]:
        return sorted(n for n, p in self.placement.items() if p.split("/", 1)[0] == daemon)

    def event(self, what: str, **details: Any) -> None:
        """Append an event; ``details`` (node, daemon, exit code, log lines...) stay machine-readable."""
        self.events.append({"time": time.time(), "what": what, **details})
        del self.events[:-MAX_EVENTS]

    def adopt_events(self, *others: InstanceRecord) -> None:
        """Keep events other copies of this record have and this one lacks: each daemon records
        what happens to its own node hosts, and a newer record must not erase that."""
        self.events = merge_events(self.events, *(o.events for o in others))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> InstanceRecord:
        return InstanceRecord(**d)


def merge_events(*lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The union of event lists (copies of one record share events), oldest first."""
    seen: dict[tuple[float, str], dict[str, Any]] = {}
    for events in lists:
        for e in events:
            seen.setdefault((e["time"], e["what"]), e)
    return sorted(seen.values(), key=lambda e: e["time"])[-MAX_EVENTS:]


class RecordStore:
    """``<data_dir>/instances/<flow>--<instance>.json``, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / "instances"
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, flow: str, instance: str) -> Path:
        return self.root / f"{flow}--{instance}.json"

    def save(self, rec: InstanceRecord) -> None:
        path = self._path(rec.flow, rec.instance)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec.to_dict()), encoding="utf-8")
        os.replace(tmp, path)

    def delete(self, flow: str, instance: str) -> None:
        self._path(flow, instance).unlink(missing_ok=True)

    def load_all(self) -> list[InstanceRecord]:
        out = []
        for path in sorted(self.root.glob("*.json")):
            try:
                out.append(InstanceRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (ValueError, TypeError, KeyError):
                path.rename(path.with_suffix(".corrupt"))
        return out
