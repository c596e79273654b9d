"""The daemon's YAML config: a pydantic model (located errors, did-you-mean), unset fields
detected. :meth:`DaemonConfig.resolve` turns it into the plain :class:`Identity` the running
daemon uses.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zflow import settings
from zflow.daemon.identity import Identity, ZenohSettings, detect_gpus, detect_memory, sanitize
from zflow.scheduler.model import norm_arch, parse_memory

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

    id: str = Field(default_factory=lambda: sanitize(socket.gethostname()))
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
    trusted_deployers: list[str] = Field(default_factory=list, description=(
        "public keys (ed25519:<base64>, from `zflow deployer pubkey`) or files holding one, of the "
        "deployers whose signed instances this daemon runs; empty: this user's own deployer key"))

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v) or v.startswith("@"):
            raise ValueError(f"daemon id {v!r} must be letters, digits, '_', '-' or '.'")
        return v

    @field_validator("trusted_deployers")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        from zflow.daemon.signing import parse_public
        from zflow.errors import UserError

        for i, key in enumerate(v):
            try:
                parse_public(key, f"trusted_deployers[{i}]")
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str) -> str:
        return norm_arch(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _mem(cls, v: Any) -> Any:
        return parse_memory(v)

    def resolve(self) -> Identity:
        """The plain identity a running daemon uses (token file read now: errors show early)."""
        token = self.token.strip() if self.token else None
        if token is None and self.token_file:
            try:
                token = Path(self.token_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                from zflow.errors import UserError

                raise UserError(f"{self.token_file}: cannot read the bootstrap token: {exc.strerror}") from None
        token = token or settings.token()
        data = self.model_dump(exclude={"token", "token_file", "zenoh", "pools"})
        return Identity(**data, token=token, zenoh=ZenohSettings(**self.zenoh.model_dump()),
                        pools=[p.model_dump() for p in self.pools])


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
