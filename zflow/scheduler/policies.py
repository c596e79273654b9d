"""Pluggable placement policies: a policy scores candidate pools; the core does the rest.

A policy only ranks. Filtering (architecture, free resources, constraints) and first fit in
descending score with a deterministic tie-break are the core's job, so every policy gets the
same explainable rejections. Register your own with :func:`register_policy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from zflow.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from zflow.scheduler.model import Demand
    from zflow.scheduler.node_placement import PoolTable


class PlacementPolicy(Protocol):
    name: str
    #: True when scores depend on free resources (recomputed per decision, not cached).
    dynamic: bool

    def scores(self, table: PoolTable, demand: Demand) -> np.ndarray:
        """One score per pool in ``table`` (higher is better)."""
        ...


class Weighted:
    """``w_perf*perf + w_energy*energy + w_cost*cost`` with the node's weights (DESIGN.md)."""

    name = "weighted"
    dynamic = False

    def scores(self, table: PoolTable, demand: Demand) -> np.ndarray:
        return table.scores @ np.asarray(demand.weights, dtype=np.float64)


class Spread:
    """Weighted score, then prefer the pool with the most free CPU: spreads a flow out."""

    name = "spread"
    dynamic = True

    def scores(self, table: PoolTable, demand: Demand) -> np.ndarray:
        weighted = table.scores @ np.asarray(demand.weights, dtype=np.float64)
        return table.cpu * 1000.0 + weighted


class Pack:
    """Weighted score, then prefer the pool with the least free CPU: fewer machines busy."""

    name = "pack"
    dynamic = True

    def scores(self, table: PoolTable, demand: Demand) -> np.ndarray:
        weighted = table.scores @ np.asarray(demand.weights, dtype=np.float64)
        return -table.cpu * 1000.0 + weighted


_REGISTRY: dict[str, PlacementPolicy] = {}


def register_policy(policy: PlacementPolicy) -> None:
    _REGISTRY[policy.name] = policy


def get_policy(name: str) -> PlacementPolicy:
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = did_you_mean(name, _REGISTRY)
        raise UserError(
            f"unknown placement policy {name!r}: expected one of {', '.join(sorted(_REGISTRY))}"
            + (f" ({hint})" if hint else "")
        ) from None


def policy_names() -> list[str]:
    return sorted(_REGISTRY)


for _p in (Weighted(), Spread(), Pack()):
    register_policy(_p)
