"""Instances across daemons: create (place, ship, load, barrier, release), start, stop, delete,
status, and re-placement after a daemon is lost. Everything goes through Zenoh queries.

Create is all-or-nothing: if any daemon fails to load its share, the daemons that did load
are told to delete theirs before the error is reported.
"""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from zflow import keyexprs
from zflow.daemon.bundles import BundleServer, ship_graph
from zflow.daemon.client import ControlClient
from zflow.daemon.signing import Signer, load_signer
from zflow.daemon.state import InstanceRecord
from zflow.dataflow.graph import Graph
from zflow.errors import Problem, RuntimeFailure, UserError, did_you_mean
from zflow.scheduler.model import Demand, demands_for
from zflow.scheduler.placement import Decision
from zflow.scheduler.service import request_placement

LOAD_TIMEOUT = 180.0  # a daemon may have to fetch a bundle and pip-install its requirements


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


def unplaced_problems(graph: Graph, decisions: list[Decision]) -> list[Problem]:
    out = []
    for d in decisions:
        if d.pool is not None:
            continue
        spec = graph.nodes[d.node]
        why = "; ".join(f"{k}: {v}" for k, v in d.rejected.items()) or "no daemon is running"
        out.append(Problem(f"node {d.node!r} cannot be placed: {why}", file=spec.source_file,
                           line=spec.source_line))
    return out


def create_instance(session: Any, graph: Graph, *, instance: str | None = None, policy: str = "weighted",
                    on_daemon_loss: str = "replace", secret: bytes | None = None, start: bool = True,
                    ready_timeout: float = 60.0, log: Any = None,
                    placement: dict[str, str] | None = None, trusted: list[str] | None = None,
                    signer: Signer | None = None) -> InstanceRecord:
    """Place (or take ``placement``: node -> "daemon/pool", decided by the caller with the
    scheduler, ``trusted`` being that answer's verified daemons), ship, sign with the deployer
    key (``signer``, default: this user's, made on first use), load everywhere (all-or-nothing)
    and start an instance."""
    say = log or (lambda _m: None)
    signer = signer or load_signer()
    instance = instance or uuid.uuid4().hex[:8]
    if instance != graph.instance:
        graph = graph.with_instance(instance)
    client = ControlClient(session)
    if not client.alive():
        raise RuntimeFailure("no daemon is running (start one with `zflow daemon run`)")
    if any(i["flow"] == graph.flow and i["instance"] == instance for i in list_instances(session)):
        raise UserError(f"instance {graph.flow}/{instance} already exists "
                        f"(`zflow instance delete {graph.flow}/{instance}` first, or choose another --id)")
    graph, payloads = ship_graph(graph, say)
    server = BundleServer(session)
    try:
        for digest, payload in payloads.items():
            server.add(digest, payload)
        if placement is None:
            demands, members = group_demands(graph, set(graph.nodes))
            decisions, answer = request_placement(session, demands, policy, secret=secret)
            problems = unplaced_problems(graph, decisions)
            if problems:
                raise UserError(problems)
            placement = {m: d.pool for d in decisions for m in members[d.node] if d.pool}
        else:
            missing = sorted(set(graph.nodes) - set(placement))
            if missing:
                raise UserError(f"no placement given for node(s) {', '.join(missing)}")
            answer = {"verified": trusted}
        rec = InstanceRecord(graph.flow, instance, graph.to_dict(), placement, policy=policy,
                             on_daemon_loss=on_daemon_loss, trusted=answer.get("verified"))
        rec.signature = signer.sign(rec.flow, rec.instance, rec.graph)
        where = ", ".join(f"{n}@{p.split('/', 1)[0]}" for n, p in sorted(placement.items()))
        rec.event(f"created: {where}")
        say(f"placed {len(placement)} nodes: {where}")
        _load_everywhere(client, rec)
    finally:
        server.close()
    if start:
        release(session, rec, ready_timeout)
        rec.state = "running"
    return rec


def _load_everywhere(client: ControlClient, rec: InstanceRecord) -> None:
    daemons = sorted(rec.daemons())
    request = {"record": rec.to_dict(), "wait_start": True}
    with ThreadPoolExecutor(max_workers=max(1, len(daemons))) as pool:
        futures = {d: pool.submit(client.call, d, "instances/load", request, LOAD_TIMEOUT) for d in daemons}
    failed = {}
    for d, fut in futures.items():
        exc = fut.exception()
        if exc is not None:
            failed[d] = exc
    if failed:
        for d in daemons:
            if d not in failed:
                with contextlib.suppress(RuntimeFailure):
                    client.call(d, "instances/delete", {"flow": rec.flow, "instance": rec.instance})
        raise RuntimeFailure(f"instance {rec.key} was not created (rolled back on "
                             f"{', '.join(d for d in daemons if d not in failed) or 'no daemon'}): "
                             + "; ".join(str(e) for e in failed.values()))


def release(session: Any, rec: InstanceRecord, timeout: float = 60.0) -> None:
    """Cross-daemon barrier: every node's token seen, then the start signal."""
    from zflow.runtime.launcher import FlowRunner
    from zflow.transport.session import SessionOptions

    graph = Graph.from_dict(rec.graph)
    barrier = FlowRunner(graph, SessionOptions(), log=None)
    client = ControlClient(session)
    if not barrier.wait_ready(session, timeout):
        seen = {str(r.ok.key_expr).rsplit("/", 1)[-1]
                for r in session.liveliness().get(keyexprs.node_alive(rec.flow, rec.instance, "*"), timeout=2.0)
                if r.ok is not None}
        missing = sorted(set(graph.nodes) - seen)
        raise RuntimeFailure(f"instance {rec.key}: nodes not ready after {timeout:g}s: {', '.join(missing)} "
                             f"(see `zflow daemon logs <id>`); the instance is loaded, not started")
    barrier.release(session)
    for d in sorted(rec.daemons()):
        with contextlib.suppress(RuntimeFailure):
            client.call(d, "instances/state", {"flow": rec.flow, "instance": rec.instance,
                                               "state": "running", "events": ["started"]})


def find_instance(session: Any, ref: str) -> tuple[InstanceRecord, dict[str, str], list[str]]:
    """The newest record of an instance (``flow/instance`` or a unique instance id), node states, holders."""
    client = ControlClient(session)
    listed = client.get_all(keyexprs.daemon_ctl("*", "instances", "list"), timeout=3.0)
    known = {f"{i['flow']}/{i['instance']}" for a in listed if a.get("ok") for i in a["instances"]}
    matches = sorted(k for k in known if ref in (k, k.split("/", 1)[1]))
    if not matches:
        hint = did_you_mean(ref, sorted(known) + sorted(k.split("/", 1)[1] for k in known))
        raise UserError(f"no instance {ref!r} on any reachable daemon" + (f" ({hint})" if hint else ""))
    if len(matches) > 1:
        raise UserError(f"instance id {ref!r} is ambiguous: {', '.join(matches)}; use FLOW/INSTANCE")
    flow, instance = matches[0].split("/", 1)
    best: InstanceRecord | None = None
    states: dict[str, str] = {}
    holders = []
    for a in client.get_all(keyexprs.daemon_ctl("*", "instances", "get"), {"flow": flow, "instance": instance},
                            timeout=3.0):
        if not a.get("ok"):
            continue
        rec = InstanceRecord.from_dict(a["record"])
        holders.append(rec)
        if best is None or rec.revision > best.revision:
            best = rec
        states.update(a.get("nodes", {}))
    if best is None:
        raise UserError(f"instance {matches[0]!r} disappeared while being looked up")
    best.adopt_events(*holders)  # node failures are recorded by the daemon that ran the node
    daemons = sorted({d for r in holders for d in r.daemons()} | best.daemons())
    return best, states, daemons


def _each(session: Any, daemons: list[str], verb: str, request: dict[str, Any]) -> list[str]:
    client = ControlClient(session)
    errors = []
    for d in daemons:
        try:
            client.call(d, verb, request, timeout=LOAD_TIMEOUT)
        except RuntimeFailure as exc:
            errors.append(str(exc))
    return errors


def start_instance(session: Any, ref: str, timeout: float = 60.0) -> InstanceRecord:
    rec, _states, _daemons = find_instance(session, ref)
    errors = _each(session, sorted(rec.daemons()), "instances/start",
                   {"flow": rec.flow, "instance": rec.instance, "wait_start": True})
    if errors:
        raise RuntimeFailure("; ".join(errors))
    release(session, rec, timeout)
    return rec


def stop_instance(session: Any, ref: str) -> InstanceRecord:
    rec, _states, daemons = find_instance(session, ref)
    alive = set(ControlClient(session).alive())
    errors = _each(session, [d for d in daemons if d in alive], "instances/stop",
                   {"flow": rec.flow, "instance": rec.instance})
    if errors:
        raise RuntimeFailure("; ".join(errors))
    return rec


def delete_instance(session: Any, ref: str) -> InstanceRecord:
    rec, _states, _daemons = find_instance(session, ref)
    ControlClient(session).get_all(keyexprs.daemon_ctl("*", "instances", "delete"),
                                   {"flow": rec.flow, "instance": rec.instance}, timeout=LOAD_TIMEOUT)
    return rec


def list_instances(session: Any) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for a in ControlClient(session).get_all(keyexprs.daemon_ctl("*", "instances", "list"), timeout=3.0):
        for i in a.get("instances", []) if a.get("ok") else []:
            key = f"{i['flow']}/{i['instance']}"
            cur = merged.get(key)
            if cur is None or i["revision"] > cur["revision"]:
                merged[key] = i
    return [merged[k] for k in sorted(merged)]


def replace_lost_nodes(session: Any, rec: InstanceRecord, lost: str, alive: set[str],
                       secret: bytes | None, local: Any) -> InstanceRecord:
    """Run by the lowest-id surviving daemon of an instance: place the lost daemon's nodes again."""
    graph = Graph.from_dict(rec.graph)
    lost_nodes = rec.nodes_on(lost)
    new = InstanceRecord.from_dict(rec.to_dict())
    new.revision += 1
    if rec.on_daemon_loss == "ignore":
        new.event(f"daemon {lost} lost; nodes {', '.join(lost_nodes)} left unplaced (on_daemon_loss: ignore)")
    elif rec.on_daemon_loss == "stop":
        session.put(keyexprs.instance_ctl(rec.flow, rec.instance, "stop"), b"")
        new.state = "stopped"
        new.event(f"daemon {lost} lost; instance stopped (on_daemon_loss: stop)")
    else:
        demands, members = group_demands(graph, lost_nodes, exclude=[lost])
        decisions, _ = request_placement(session, demands, rec.policy, trusted=rec.trusted, secret=secret)
        for d in decisions:
            for m in members[d.node]:
                if d.pool:
                    new.placement[m] = d.pool
                    new.event(f"daemon {lost} lost; node {m} re-placed on {d.daemon}")
                else:
                    why = "; ".join(f"{k}: {v}" for k, v in d.rejected.items()) or "no daemon left"
                    new.event(f"daemon {lost} lost; node {m} could not be re-placed: {why}")
    targets = (new.daemons() | rec.daemons()) & alive - {lost}
    client = ControlClient(session)
    request = {"record": new.to_dict()}
    for daemon in sorted(targets | {local.cfg.id}):
        if daemon == local.cfg.id:
            local.update_instance(request)
        else:
            with contextlib.suppress(RuntimeFailure):
                client.call(daemon, "instances/update", request, timeout=LOAD_TIMEOUT)
    local.log(f"{rec.key}: " + new.events[-1]["what"] if new.events else rec.key)
    return new

