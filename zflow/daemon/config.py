"""A daemon's identity and capacity: from a YAML file (validated, located errors) or detected.

Detection reads only the standard library and ``/proc`` (no psutil), so it works the same on
a Raspberry Pi and a cloud VM.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zflow.scheduler.model import MiB, Pool, norm_arch, parse_memory

_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PoolConfig(_Strict):
    """A node pool: part of this daemon's capacity with its scores (0-100, higher is better)."""

    name: str = "default"
    cpu: float | None = Field(default=None, gt=0, description="CPUs in this pool (default: all)")
    memory: int | None = Field(default=None, description="bytes, or 512M / 2G (default: all)")
    gpu: int = Field(default=0, ge=0)
    performance: float = Field(default=50, ge=0, le=100)
    energy: float = Field(default=50, ge=0, le=100)
    cost: float = Field(default=50, ge=0, le=100)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: Any) -> Any:
        return None if v is None else parse_memory(v)


class ZenohConfig(_Strict):
    mode: Literal["client", "peer", "router"] = "client"
    connect: list[str] = Field(default_factory=list)
    listen: list[str] = Field(default_factory=list)
    config_file: str | None = None
    lease_ms: int = Field(default=3000, ge=500, description=(
        "Zenoh link lease: how soon others notice this daemon is gone when its host dies "
        "(Zenoh's default is 10 s; re-placement waits for it)"))


class DaemonConfig(_Strict):
    """``zflow daemon run --config daemon.yaml``: every field optional, unset ones detected."""

    id: str = Field(default_factory=lambda: _sanitize(socket.gethostname()))
    site: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    arch: str = Field(default_factory=lambda: norm_arch(platform.machine()))
    cpus: float = Field(default_factory=lambda: float(os.cpu_count() or 1), gt=0)
    memory: int = Field(default_factory=lambda: detect_memory())
    gpus: int = Field(default_factory=lambda: detect_gpus(), ge=0)
    pools: list[PoolConfig] = Field(default_factory=list)
    zenoh: ZenohConfig = Field(default_factory=ZenohConfig)
    router: bool = False
    scheduler: bool = False
    data_dir: str = Field(default_factory=lambda: str(Path.home() / ".local/share/zflow/daemon"))
    token: str | None = None
    token_file: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v) or v.startswith("@"):
            raise ValueError(f"daemon id {v!r} must be letters, digits, '_', '-' or '.'")
        return v

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str) -> str:
        return norm_arch(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: Any) -> Any:
        return parse_memory(v)

    def bootstrap_token(self) -> str | None:
        if self.token:
            return self.token.strip()
        if self.token_file:
            return Path(self.token_file).expanduser().read_text(encoding="utf-8").strip()
        return os.environ.get("ZFLOW_TOKEN") or None

    def pool_list(self) -> list[Pool]:
        """Configured pools (capacity, not yet minus what runs); one 'default' pool if none."""
        specs = self.pools or [PoolConfig()]
        return [
            Pool(daemon=self.id, name=p.name, arch=self.arch, site=self.site,
                 labels={**self.labels, **p.labels},
                 cpu=p.cpu if p.cpu is not None else self.cpus,
                 memory=p.memory if p.memory is not None else self.memory,
                 gpu=p.gpu if self.pools else self.gpus,
                 performance=p.performance, energy=p.energy, cost=p.cost)
            for p in specs
        ]


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", name) or "daemon"


def detect_memory() -> int:
    """Total memory from /proc/meminfo; 1 GiB when unknown (non-Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1024 * MiB


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def detect_gpus() -> int:
    """NVIDIA devices visible in /dev (no driver library needed)."""
    try:
        return sum(1 for p in Path("/dev").iterdir() if re.fullmatch(r"nvidia\d+", p.name))
    except OSError:
        return 0


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> DaemonConfig:
    """Load (or detect) a config; CLI overrides win over the file. Errors point at the line."""
    from zflow.documents import Document, load_document, validate

    doc = load_document(path) if path else Document(data={})
    data = dict(doc.data or {}) if isinstance(doc.data, dict) or doc.data is None else doc.data
    if isinstance(data, dict):
        for k, v in (overrides or {}).items():
            if v is None:
                continue
            if k in ("mode", "connect", "listen", "config_file"):
                data.setdefault("zenoh", {})
                data["zenoh"] = {**data["zenoh"], k: v}
            else:
                data[k] = v
    doc = Document(data=data, file=doc.file, lines=doc.lines)
    return validate(DaemonConfig, doc)
