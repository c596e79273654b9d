"""The pure placement core: no Zenoh, no I/O, fast enough for thousands of decisions a second.

Stage 1 filters pools (architecture, eligibility, user constraints, free resources); stage 2
scores the survivors with a policy and takes the first fit in descending score, ties broken by
pool key (daemon/pool) so the same inputs always give the same answer. Reasons for rejected
candidates are built only when asked (``explain``) or when a node cannot be placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zflow.scheduler.model import Demand, Pool, norm_arch
from zflow.scheduler.policies import PlacementPolicy, get_policy


@dataclass
class Decision:
    node: str
    pool: str | None  # "daemon/pool", None when nothing fits
    daemon: str | None
    score: float | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # pool key -> reason

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "pool": self.pool, "daemon": self.daemon, "score": self.score,
                "rejected": dict(self.rejected)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Decision:
        return Decision(**d)


class PoolTable:
    """Pools as column arrays, sorted by key (the deterministic tie-break order)."""

    def __init__(self, pools: list[Pool]):
        self.pools = sorted(pools, key=lambda p: (p.daemon, p.name))
        self.keys = [p.key for p in self.pools]
        self.cpu = np.array([p.cpu for p in self.pools], dtype=np.float64)
        self.memory = np.array([p.memory for p in self.pools], dtype=np.float64)
        self.gpu = np.array([p.gpu for p in self.pools], dtype=np.float64)
        self.scores = np.array([[p.performance, p.energy, p.cost] for p in self.pools],
                               dtype=np.float64).reshape(len(self.pools), 3)
        self.arch = np.array([norm_arch(p.arch) for p in self.pools], dtype=object)
        self.eligible = np.array([p.ineligible is None for p in self.pools], dtype=bool)

    def __len__(self) -> int:
        return len(self.pools)

    def take(self, i: int, demand: Demand) -> None:
        self.cpu[i] -= demand.cpu
        self.memory[i] -= demand.memory
        self.gpu[i] -= demand.gpu


def _static_mask(table: PoolTable, d: Demand) -> np.ndarray:
    mask = table.eligible.copy()
    if d.arch:
        mask &= np.isin(table.arch, [norm_arch(a) for a in d.arch])
    if d.sites or d.labels or d.pools or d.daemons or d.exclude:
        for i, p in enumerate(table.pools):
            if mask[i] and _constraint_reason(p, d) is not None:
                mask[i] = False
    return mask


def _constraint_reason(p: Pool, d: Demand) -> str | None:
    if d.exclude and p.daemon in d.exclude:
        return f"daemon {p.daemon!r} is excluded (lost or being replaced)"
    if d.daemons and p.daemon not in d.daemons:
        return f"daemon {p.daemon!r} is not a requested daemon ({', '.join(d.daemons)})"
    if d.sites and p.site not in d.sites:
        return f"site {p.site or '(none)'!r} is not a requested site ({', '.join(d.sites)})"
    if d.pools and p.name not in d.pools and p.key not in d.pools:
        return f"pool {p.name!r} is not a requested pool ({', '.join(d.pools)})"
    for k, v in d.labels.items():
        allowed = v if isinstance(v, tuple) else (v,)
        if p.labels.get(k) not in allowed:
            has = p.labels.get(k)
            want = f"{k}={v}" if isinstance(v, str) else f"{k} in ({', '.join(v)})"
            return f"label {want} required, pool has " + (f"{k}={has}" if has is not None else f"no label {k!r}")
    return None


def _reason(table: PoolTable, i: int, d: Demand) -> str:
    p = table.pools[i]
    if p.ineligible:
        return p.ineligible
    if d.arch and norm_arch(p.arch) not in {norm_arch(a) for a in d.arch}:
        return f"architecture {norm_arch(p.arch)} is not a requested one ({', '.join(d.arch)})"
    why = _constraint_reason(p, d)
    if why:
        return why
    if table.cpu[i] < d.cpu - 1e-9:
        return f"needs {d.cpu:g} CPU, {max(table.cpu[i], 0):g} free"
    if table.memory[i] < d.memory:
        return f"needs {d.memory / 2**20:.0f} MiB memory, {max(table.memory[i], 0) / 2**20:.0f} MiB free"
    if table.gpu[i] < d.gpu:
        return f"needs {d.gpu} GPU, {max(int(table.gpu[i]), 0)} free"
    return ""


class Placer:
    """Places demands one after another on a pool table, consuming capacity as it goes."""

    def __init__(self, pools: list[Pool], policy: str | PlacementPolicy = "weighted"):
        self.table = PoolTable(pools)
        self.policy = get_policy(policy) if isinstance(policy, str) else policy
        self._masks: dict[tuple[Any, ...], np.ndarray] = {}
        self._orders: dict[tuple[float, ...], tuple[np.ndarray, np.ndarray]] = {}

    def _mask(self, d: Demand) -> np.ndarray:
        key = (d.arch, d.sites, tuple(sorted(d.labels.items())), d.pools, d.daemons, d.exclude)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks[key] = _static_mask(self.table, d)
        return mask

    def _order(self, d: Demand) -> tuple[np.ndarray, np.ndarray]:
        """Pool indices by descending score (stable: ties keep key order), and the scores."""
        if self.policy.dynamic:
            scores = self.policy.scores(self.table, d)
            return np.argsort(-scores, kind="stable"), scores
        cached = self._orders.get(d.weights)
        if cached is None:
            scores = self.policy.scores(self.table, d)
            cached = self._orders[d.weights] = (np.argsort(-scores, kind="stable"), scores)
        return cached

    def place(self, d: Demand, explain: bool = False) -> Decision:
        t = self.table
        if len(t) == 0:
            return Decision(d.node, None, None, rejected={})
        fits = self._mask(d) & (t.cpu >= d.cpu - 1e-9) & (t.memory >= d.memory) & (t.gpu >= d.gpu)
        order, scores = self._order(d)
        ranked = fits[order]
        pos = int(ranked.argmax())
        if not ranked[pos]:
            return Decision(d.node, None, None, rejected=self._reasons(d, None, scores))
        i = int(order[pos])
        rejected = self._reasons(d, i, scores) if explain else {}
        t.take(i, d)
        return Decision(d.node, t.keys[i], t.pools[i].daemon, float(scores[i]), rejected)

    def _reasons(self, d: Demand, chosen: int | None, scores: np.ndarray) -> dict[str, str]:
        out = {}
        for i, key in enumerate(self.table.keys):
            if i == chosen:
                continue
            why = _reason(self.table, i, d)
            if not why and chosen is not None:
                why = (f"score {scores[i]:g} ranks below {self.table.keys[chosen]} ({scores[chosen]:g})"
                       if scores[i] < scores[chosen] else
                       f"same score {scores[i]:g} as {self.table.keys[chosen]}, which sorts first")
            out[key] = why
        return out

    def place_all(self, demands: list[Demand], explain: bool = False) -> list[Decision]:
        return [self.place(d, explain) for d in demands]


def place(pools: list[Pool], demands: list[Demand], policy: str = "weighted",
          explain: bool = False) -> list[Decision]:
    """Place every demand in order (first fit, capacity consumed as it goes)."""
    return Placer(pools, policy).place_all(demands, explain)


def decision_lines(decisions: list[Decision], members: dict[str, list[str]],
                   sites: dict[str, str] | None = None) -> list[str]:
    """What ``zflow sched explain`` prints for a flow or a workflow."""
    out = []
    for d in decisions:
        names = ", ".join(members.get(d.node, [d.node]))
        if d.pool:
            site = (sites or {}).get(d.node)
            out.append(f"{names}: -> {d.pool}" + (f" (site {site})" if site else "") + f" (score {d.score:g})")
        else:
            out.append(f"{names}: CANNOT BE PLACED")
        for key, why in sorted(d.rejected.items()):
            out.append(f"    {key}: {why}")
    return out
