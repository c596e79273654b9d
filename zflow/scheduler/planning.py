"""Placing a graph: what the scheduler is asked (a :class:`PlacementPlan`) and what it decided
(a :class:`Placement`), one object each instead of loose parameters passed along.

Nodes that share a process (a process group) share a daemon, so the scheduler is asked once
per group (:func:`group_demands`) and its decision applies to every member.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zflow.dataflow.graph import Graph
from zflow.scheduler.model import Demand, demands_for
from zflow.scheduler.node_placement import Decision, decision_lines
from zflow.scheduler.service import request_placement

if TYPE_CHECKING:
    import zenoh


def group_demands(graph: Graph, nodes: list[str] | set[str], exclude: list[str] | tuple[str, ...] = ()
                  ) -> tuple[list[Demand], dict[str, list[str]]]:
    """One demand per process group (its members share a process, so they share a daemon)."""
    wanted = set(nodes)
    per_node = {d.node: d for d in demands_for(graph, wanted, exclude)}
    demands, members = [], {}
    for _group, ids in graph.groups().items():
        ids = [n for n in ids if n in wanted]
        if not ids:
            continue
        head = per_node[ids[0]]
        for other in ids[1:]:
            head = replace(head, cpu=head.cpu + per_node[other].cpu, memory=head.memory + per_node[other].memory,
                           gpu=head.gpu + per_node[other].gpu)
        demands.append(head)
        members[head.node] = ids
    return demands, members


@dataclass(frozen=True)
class PlacementPlan:
    """How to place: the policy, whose tokens to check, whom to trust or leave out."""

    policy: str = "weighted"
    secret: bytes | None = None  # the cluster secret: daemons must prove their bootstrap token
    trusted: list[str] | None = None  # only these daemons (those verified when the instance was made)
    exclude: tuple[str, ...] = ()  # daemons lost or being replaced
    explain: bool = False  # say why each other candidate was rejected


@dataclass
class Placement:
    """Where each process group goes; ``members`` maps a decision's node to the nodes it carries."""

    decisions: list[Decision]
    members: dict[str, list[str]]
    answer: dict[str, Any] = field(default_factory=dict)  # the scheduler's answer (daemons, verified, local)

    @property
    def pools(self) -> dict[str, str]:
        """node -> "daemon/pool", for every placed node."""
        return {m: d.pool for d in self.decisions for m in self.members[d.node] if d.pool}

    def unplaced(self) -> list[Decision]:
        return [d for d in self.decisions if d.pool is None]

    def lines(self, sites: dict[str, str] | None = None) -> list[str]:
        return decision_lines(self.decisions, self.members, sites)


def place_graph(session: zenoh.Session, graph: Graph, plan: PlacementPlan,
                nodes: list[str] | set[str] | None = None) -> Placement:
    """Ask the scheduler (or place here when none answers) for ``nodes`` (default: all) of ``graph``."""
    demands, members = group_demands(graph, set(graph.nodes) if nodes is None else nodes, plan.exclude)
    decisions, answer = request_placement(session, demands, plan.policy, explain=plan.explain,
                                          trusted=plan.trusted, secret=plan.secret)
    return Placement(decisions, members, answer)
