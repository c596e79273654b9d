"""Workflows across daemons: the scheduler places the steps, the compiler gives each step the
site it landed on, and the daemons' instance machinery does the rest.

:func:`plan_workflow` asks the scheduler (the ``zflow/ctl/sched/place`` queryable, or the same
core locally) where every step goes, honouring the steps' constraints and objectives (their
``deploy:`` hints). :func:`deploy_workflow` then compiles again with the chosen sites (so a file
output is pushed to the global store exactly when a consumer landed on another site), pins each
step to its daemon and pool, and creates the instance through :mod:`zflow.daemon.instance_deploy`:
all-or-nothing, each step's action directory shipped as a content-addressed bundle. Step events
carry the daemon, so run records show where each step ran; a runs storage (``zflow workflow
storage``) must be reachable on the same Zenoh network to keep them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from zflow.daemon.instance_deploy import create_instance, delete_instance
from zflow.daemon.state import InstanceRecord
from zflow.dataflow.graph import Graph
from zflow.errors import Problem, RuntimeFailure, UserError
from zflow.scheduler.node_placement import Decision, decision_lines
from zflow.scheduler.planning import PlacementPlan, place_graph
from zflow.transport.control_client import ControlClient
from zflow.workflows.workflow import Workflow
from zflow.workflows.workflow_compiler import to_graph

DEFAULT_INSTANCE = "main"


@dataclass
class Plan:
    """Where each step of a workflow goes, and why (``decisions`` carry the rejections)."""

    graph: Graph  # compiled before placement (the scheduler's input)
    decisions: list[Decision]
    members: dict[str, list[str]]  # decision node -> the steps sharing its process
    answer: dict[str, Any]
    pools: dict[str, str]  # step -> "daemon/pool"
    sites: dict[str, str]  # step -> site of its daemon

    @property
    def daemons(self) -> dict[str, str]:
        return {step: pool.split("/", 1)[0] for step, pool in self.pools.items()}

    def unplaced(self) -> list[Decision]:
        return [d for d in self.decisions if d.pool is None]


def plan_workflow(session: Any, wf: Workflow, instance: str = DEFAULT_INSTANCE, policy: str = "weighted",
                  secret: bytes | None = None, explain: bool = False) -> Plan:
    """Ask the scheduler where each step goes (nothing is started)."""
    graph = to_graph(wf, instance)
    placed = place_graph(session, graph, PlacementPlan(policy=policy, secret=secret, explain=explain))
    decisions, members, answer, pools = placed.decisions, placed.members, placed.answer, placed.pools
    site_of = {st["id"]: st.get("site") or "" for st in ControlClient(session).statuses()}
    sites = {step: site_of.get(pool.split("/", 1)[0]) or "local" for step, pool in pools.items()}
    return Plan(graph, decisions, members, answer, pools, sites)


def placed_graph(wf: Workflow, plan: Plan, instance: str = DEFAULT_INSTANCE,
                 max_runs: int | None = None) -> Graph:
    """The workflow compiled with each step's placed site. The ``deploy:`` hints stay the
    constraints (not a pin), so a step re-placed after a daemon loss still honours them."""
    graph = to_graph(wf, instance, sites=plan.sites)
    if max_runs is None:
        return graph
    trigger = graph.nodes[wf.trigger]
    nodes = {**graph.nodes, wf.trigger: replace(trigger, config={**trigger.config, "max_runs": max_runs})}
    return replace(graph, nodes=nodes)


def unplaced_steps(wf: Workflow, plan: Plan) -> list[Problem]:
    """One located problem per step that fits nowhere, with every candidate's reason."""
    out = []
    for d in plan.unplaced():
        why = "; ".join(f"{k}: {v}" for k, v in sorted(d.rejected.items())) or "no daemon is running"
        for step in plan.members.get(d.node, [d.node]):
            out.append(Problem(f"step {step!r} cannot be placed: {why}", file=wf.file, line=wf.steps[step].line,
                               hint="see `zflow workflow explain`"))
    return out


def placeable_plan(session: Any, wf: Workflow, instance: str = DEFAULT_INSTANCE, policy: str = "weighted",
                   secret: bytes | None = None) -> Plan:
    """A plan where every step found a daemon; otherwise a UserError naming each step's line."""
    from zflow.workflows.workflow_runner import check_runnable

    check_runnable(wf)
    if not ControlClient(session).alive():
        raise RuntimeFailure("no daemon is running (start one with `zflow daemon run`)")
    plan = plan_workflow(session, wf, instance, policy, secret)
    if plan.unplaced():
        raise UserError(unplaced_steps(wf, plan))
    return plan


def deploy_workflow(session: Any, wf: Workflow, instance: str = DEFAULT_INSTANCE, policy: str = "weighted",
                    secret: bytes | None = None, max_runs: int | None = None, ready_timeout: float = 60.0,
                    log: Any = None, plan: Plan | None = None) -> tuple[InstanceRecord, Plan]:
    """Place (unless given a plan), compile, ship and start a workflow on the running daemons
    (all-or-nothing: a daemon failing to load its share rolls back the others)."""
    say = log or (lambda _m: None)
    plan = plan or placeable_plan(session, wf, instance, policy, secret)
    on_demand = [s.id for s in wf.steps.values() if s.id != wf.trigger and s.execution == "on-demand"]
    if on_demand:
        say(f"steps {', '.join(on_demand)} run warm on daemons (scale to zero is for `zflow workflow run`)")
    graph = placed_graph(wf, plan, instance, max_runs)
    rec = create_instance(session, graph, instance=instance, policy=policy, secret=secret,
                          ready_timeout=ready_timeout, log=say, placement=plan.pools,
                          trusted=plan.answer.get("verified"))
    return rec, plan


def undeploy_workflow(session: Any, name: str, instance: str = DEFAULT_INSTANCE) -> InstanceRecord:
    """Delete a workflow's instance on every daemon holding it."""
    return delete_instance(session, f"{name}/{instance}")


def explain_lines(plan: Plan, policy: str = "weighted") -> list[str]:
    """Per step: the chosen daemon/pool and site, then why each other candidate was rejected."""
    where = "locally (no scheduler queryable answered)" if plan.answer.get("local") else "by the scheduler service"
    out = [f"placement of workflow {plan.graph.flow} ({len(plan.graph.nodes)} steps, policy {policy}) "
           f"decided {where}; daemons: {', '.join(plan.answer.get('daemons', [])) or 'none'}"]
    out += decision_lines(plan.decisions, plan.members, plan.sites)
    return out
