"""What placement reasons about: pools of capacity on daemons, and what each node asks for.

Plain dataclasses (no pydantic) so the placement core stays fast and the daemon stays small.
Both travel over Zenoh as dicts (``to_dict``/``from_dict``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from zflow.errors import UserError

MiB = 1024 * 1024

_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64", "armhf": "armv7l", "arm": "armv7l"}


def norm_arch(arch: str) -> str:
    """One spelling per architecture: ``arm64`` is ``aarch64``, ``amd64`` is ``x86_64``."""
    a = str(arch).strip().lower()
    return _ARCH_ALIASES.get(a, a)


_UNITS = {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB, "T": 1024 * 1024 * MiB}


def parse_memory(value: Any) -> int:
    """``512M``, ``2G``, ``1.5Gi`` or a byte count -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a memory size: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    num, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
    try:
        return int(float(num) * _UNITS[unit])
    except ValueError:
        raise ValueError(f"not a memory size: {value!r} (expected e.g. 512M, 2G or bytes)") from None


@dataclass
class Pool:
    """A slice of one daemon's capacity with its own scores (0-100, higher is better)."""

    daemon: str
    name: str = "default"
    arch: str = "x86_64"
    site: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    cpu: float = 1.0  # free now
    memory: int = 512 * MiB  # free now, bytes
    gpu: int = 0  # free now
    performance: float = 50.0
    energy: float = 50.0
    cost: float = 50.0
    ineligible: str | None = None  # why this pool may never be given work (e.g. bad token)

    @property
    def key(self) -> str:
        return f"{self.daemon}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Pool:
        return Pool(**d)


@dataclass
class Demand:
    """What one node needs and prefers; built from ``NodeSpec.deploy``."""

    node: str
    cpu: float = 0.1
    memory: int = 64 * MiB
    gpu: int = 0
    arch: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    labels: dict[str, str | tuple[str, ...]] = field(default_factory=dict)  # a tuple: any of these
    pools: tuple[str, ...] = ()  # pool names, or "daemon/pool" keys
    daemons: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # daemons that must not be used (e.g. just lost)
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # performance, energy, cost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Demand:
        d = dict(d)
        for k in ("arch", "sites", "pools", "daemons", "exclude"):
            d[k] = tuple(d.get(k, ()))
        d["weights"] = tuple(d.get("weights", (1.0, 1.0, 1.0)))
        d["labels"] = _labels(d.get("labels"))
        return Demand(**d)


def _labels(value: Any) -> dict[str, str | tuple[str, ...]]:
    """Label constraints: a value, or a list meaning any of them (Ryax ``site_type_list``)."""
    out: dict[str, str | tuple[str, ...]] = {}
    for k, v in (value or {}).items():
        out[str(k)] = tuple(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)
    return out


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return (str(value),)


DEPLOY_KEYS = ("daemon", "daemons", "site", "sites", "arch", "labels", "pool", "pools", "resources",
               "objectives", "requirements", "bundle")


def demand_from_deploy(node: str, deploy: dict[str, Any], file: str | None = None,
                       line: int | None = None) -> Demand:
    """Read a node's ``deploy:`` hints; unknown keys get a did-you-mean, errors name the node's line."""
    from zflow.errors import Problem, did_you_mean

    problems = []
    for key in deploy:
        if key not in DEPLOY_KEYS:
            hint = did_you_mean(key, DEPLOY_KEYS)
            problems.append(Problem(f"node {node!r}: unknown deploy key {key!r}", file, line, ("deploy", key),
                                    hint or f"expected one of {', '.join(DEPLOY_KEYS)}"))
    res = deploy.get("resources") or {}
    obj = deploy.get("objectives") or {}
    try:
        cpu = float(res.get("cpu", 0.1))
        memory = parse_memory(res.get("memory", 64 * MiB))
        gpu = int(res.get("gpu", 0))
        weights = (float(obj.get("performance", 1.0)), float(obj.get("energy", 1.0)), float(obj.get("cost", 1.0)))
    except (TypeError, ValueError, AttributeError) as exc:
        problems.append(Problem(f"node {node!r}: {exc}", file, line, ("deploy",)))
        cpu, memory, gpu, weights = 0.1, 64 * MiB, 0, (1.0, 1.0, 1.0)
    if problems:
        raise UserError(problems)
    return Demand(
        node=node,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        arch=tuple(norm_arch(a) for a in _strs(deploy.get("arch"))),
        sites=_strs(deploy.get("sites")) + _strs(deploy.get("site")),
        labels=_labels(deploy.get("labels")),
        pools=_strs(deploy.get("pools")) + _strs(deploy.get("pool")),
        daemons=_strs(deploy.get("daemons")) + _strs(deploy.get("daemon")),
        weights=weights,
    )


def demands_for(graph: Any, nodes: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> list[Demand]:
    """One demand per node (graph order), from ``deploy:`` hints."""
    wanted = set(graph.nodes) if nodes is None else set(nodes)
    out = []
    for nid, spec in graph.nodes.items():
        if nid in wanted:
            d = demand_from_deploy(nid, spec.deploy, spec.source_file or graph.source_file, spec.source_line)
            d.exclude = tuple(exclude)
            out.append(d)
    return out
