"""Per-node statistics: messages in and out, drops per input, queue depth.

A node host keeps the live counters (:mod:`zflow.runtime.node_host`), answers a Zenoh queryable on
``keyexprs.node_stats(flow, instance, node)`` with :class:`NodeStats` as JSON, and puts the
final figures on the same key when it ends (``zflow run`` collects them for its summary).

Plain dataclasses rather than pydantic: the node host never imports the validator (start-up
time and memory on small devices); the format is this module's ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)  # counted on the hot path: slots make that attribute cheap
class InputStats:
    """One input fed from another process. ``received``: taken from the queue and handed to the
    node; ``dropped``: pushed out of a ``drop_oldest``/``latest`` queue by newer messages
    (always 0 for ``block``); ``depth``: waiting in the queue now (None when Zenoh's channel
    does not tell, as for ``block``)."""

    policy: str
    queue_size: int
    received: int = 0
    dropped: int = 0
    depth: int | None = None
    ended: bool = False


@dataclass
class NodeStats:
    flow: str
    instance: str
    node: str
    inputs: dict[str, InputStats] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)  # messages put on Zenoh per output
    final: bool = False  # the host's last word: the node has ended

    @property
    def dropped(self) -> int:
        return sum(i.dropped for i in self.inputs.values())

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def from_json(raw: bytes | str) -> NodeStats:
        data: dict[str, Any] = json.loads(raw)
        inputs = {p: InputStats(**i) for p, i in data.pop("inputs", {}).items()}
        return NodeStats(**data, inputs=inputs)

    def drop_lines(self) -> list[str]:
        """One line per input that lost messages (nothing when none did)."""
        return [f"{self.node}.{port}: dropped {i.dropped:,} of {i.received + i.dropped:,} "
                f"({i.policy}, queue {i.queue_size})"
                for port, i in sorted(self.inputs.items()) if i.dropped]
