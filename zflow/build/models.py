"""The lockfile (``zflow_lock.json``) and the builder's Zenoh messages as pydantic models.

A lock records what went into an image (inputs, the exact .deb files and wheels per
architecture, the builder's own facts) and what came out (digests), so ``--lock frozen``
can rebuild it from a content-addressed cache and prove it got the same bytes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LOCK_FILE = "zflow_lock.json"
LOCK_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Deb(_Strict):
    """One Debian package file, as downloaded from the mirror."""

    name: str
    version: str
    arch: str
    sha256: str
    size: int
    filename: str


class Wheel(_Strict):
    """One wheel; ``layer`` says whether it serves the zflow runtime or the action."""

    name: str
    version: str
    filename: str
    sha256: str
    url: str
    layer: Literal["runtime", "deps"]


class LockInputs(_Strict):
    """Everything a user controls; any change here under ``--lock frozen`` is refused."""

    action_id: str
    action_version: str
    python: str
    suite: str
    mirror: str
    index_url: str
    platforms: list[str]
    source_date_epoch: int
    requirements: list[str]
    constraints: list[str]
    runtime_requirements: list[str]
    debian_packages: list[str]
    files: dict[str, str] = Field(description="action file -> sha256")
    zflow_sha256: str = Field(description="digest of the zflow runtime's source tree")


class BuilderFacts(_Strict):
    """The tools that did the build: informative (they are not inputs of the digests)."""

    zflow_version: str
    host_python: str
    pip: str
    mmdebstrap: str


class PlatformDigests(_Strict):
    manifest: str
    config: str
    layers: list[str]
    diff_ids: list[str]


class Digests(_Strict):
    index: str
    platforms: dict[str, PlatformDigests]


class Lock(_Strict):
    lockVersion: Literal[1] = 1
    inputs: LockInputs
    debs: dict[str, list[Deb]]
    wheels: dict[str, list[Wheel]]
    builder: BuilderFacts
    digests: Digests | None = None


# ---- builder operator messages -------------------------------------------------------------------
class BuildRequest(_Strict):
    """``zflow/build/action/req/{id}``: build the action whose bundle has this sha256."""

    bundle: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the action bundle (tar)")
    platforms: list[str] = Field(default_factory=lambda: ["amd64", "arm64"])
    lock: Literal["auto", "update", "frozen"] = "auto"
    push: str | None = None
    insecure: bool = False


class BuildStatus(_Strict):
    """``zflow/build/action/status/{id}``: one step done (``seq`` orders them)."""

    id: str
    seq: int
    step: str
    detail: str = ""


class BuildResult(_Strict):
    """``zflow/build/action/result/{id}``: the digests, or the problems that stopped the build."""

    id: str
    ok: bool
    index: str | None = None
    platforms: dict[str, str] = Field(default_factory=dict)
    pushed: str | None = None
    errors: list[str] = Field(default_factory=list)
    exit_code: int = 0
    cached: bool = False
    lock: dict[str, Any] | None = Field(default=None, description="the lock the build wrote (zflow_lock.json)")
