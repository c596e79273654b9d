"""What a running daemon knows about itself: plain data, no pydantic.

``zflow daemon run`` validates the YAML with pydantic (:mod:`zflow.daemon.config`), resolves it
into an :class:`Identity` and then execs a fresh interpreter that only loads this, so the
long-running process on a Raspberry Pi never carries the validator (about 18 MB of RSS).
Detection reads only the standard library and ``/proc`` (no psutil).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zflow import settings
from zflow.scheduler.model import MiB, Pool

#: Environment of the node hosts a daemon starts: which daemon and site they run on (workflow
#: steps record it in their run events, and it stays true after a re-placement).
DAEMON_ENV, SITE_ENV = settings.DAEMON_ID, settings.DAEMON_SITE


@dataclass
class ZenohSettings:
    mode: str = "client"
    connect: list[str] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    config_file: str | None = None
    lease_ms: int = 3000


@dataclass
class Identity:
    id: str
    arch: str
    cpus: float
    memory: int
    data_dir: str
    site: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    pools: list[dict[str, Any]] = field(default_factory=list)  # name, cpu, memory, gpu, scores, labels
    zenoh: ZenohSettings = field(default_factory=ZenohSettings)
    router: bool = False
    scheduler: bool = False
    token: str | None = None
    trusted_deployers: list[str] = field(default_factory=list)  # ed25519:<base64> or .pub files

    def bootstrap_token(self) -> str | None:
        return self.token

    def pool_list(self) -> list[Pool]:
        """Configured pools (capacity, not yet minus what runs); one 'default' pool if none."""
        specs = self.pools or [{"name": "default"}]
        out = []
        for p in specs:
            out.append(Pool(
                daemon=self.id, name=p.get("name", "default"), arch=self.arch, site=self.site,
                labels={**self.labels, **(p.get("labels") or {})},
                cpu=p["cpu"] if p.get("cpu") is not None else self.cpus,
                memory=p["memory"] if p.get("memory") is not None else self.memory,
                gpu=p.get("gpu", 0) if self.pools else self.gpus,
                performance=p.get("performance", 50), energy=p.get("energy", 50), cost=p.get("cost", 50)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Identity:
        return Identity(**{**d, "zenoh": ZenohSettings(**d.get("zenoh", {}))})


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", name) or "daemon"


def _meminfo(field_name: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def detect_memory() -> int:
    """Total memory from /proc/meminfo; 1 GiB when unknown (non-Linux)."""
    return _meminfo("MemTotal") or 1024 * MiB


def available_memory() -> int | None:
    return _meminfo("MemAvailable")


def detect_gpus() -> int:
    """NVIDIA devices visible in /dev (no driver library needed)."""
    try:
        return sum(1 for p in Path("/dev").iterdir() if re.fullmatch(r"nvidia\d+", p.name))
    except OSError:
        return 0
