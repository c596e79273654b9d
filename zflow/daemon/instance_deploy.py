"""Instances across daemons, from a deployer: create (place, ship, load, barrier, release), start,
stop, delete, status and list. Everything goes through Zenoh queries; records are read from the
daemons' replicated storage (every daemon answers with its copy, the newest wins), node states
from the daemons the record places the nodes on. Re-placement after a loss is ``failover.py``.

Create is all-or-nothing: if any daemon fails to load its share, the daemons that did load
are told to delete theirs before the error is reported.
"""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from zflow import keyexprs
from zflow.daemon.bundles import BundleServer, ship_graph
from zflow.daemon.signing import Signer, load_signer
from zflow.daemon.state import InstanceRecord, health, newest
from zflow.dataflow.graph import Graph
from zflow.errors import Problem, RuntimeFailure, UserError, did_you_mean
from zflow.scheduler.node_placement import Decision
from zflow.scheduler.planning import PlacementPlan, place_graph
from zflow.transport import control as ctl
from zflow.transport.control_client import ControlClient

if TYPE_CHECKING:
    import zenoh

LOAD_TIMEOUT = 180.0  # a daemon may have to fetch a bundle and pip-install its requirements


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


def create_instance(session: zenoh.Session, graph: Graph, *, instance: str | None = None, policy: str = "weighted",
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
            placed = place_graph(session, graph, PlacementPlan(policy=policy, secret=secret))
            problems = unplaced_problems(graph, placed.decisions)
            if problems:
                raise UserError(problems)
            placement, answer = placed.pools, placed.answer
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
    """Load on the daemons the record places nodes on (all or nothing), and on every other live
    (trusted) daemon too, with no node there: each keeps a copy of the code in the background,
    so the nodes can be re-placed on it even when the daemon that ran them all is gone."""
    daemons = sorted(rec.daemons())
    spares = [d for d in client.alive() if d not in daemons and (rec.trusted is None or d in rec.trusted)]
    request = ctl.LoadRequest(record=rec.to_dict(), wait_start=True)
    with ThreadPoolExecutor(max_workers=max(1, len(daemons) + len(spares))) as pool:
        futures = {d: pool.submit(client.ask, d, request, LOAD_TIMEOUT)
                   for d in daemons + spares}
    failed = {}
    for d in daemons:  # a spare that refuses only cannot take nodes later
        exc = futures[d].exception()
        if exc is not None:
            failed[d] = exc
    if failed:  # every daemon forgets it (each holds a replica of the record), not only the loaders
        _delete_everywhere(client, rec)
        raise RuntimeFailure(f"instance {rec.key} was not created (rolled back on "
                             f"{', '.join(d for d in daemons if d not in failed) or 'no daemon'}): "
                             + "; ".join(str(e) for e in failed.values()))


def release(session: zenoh.Session, rec: InstanceRecord, timeout: float = 60.0) -> None:
    """Cross-daemon barrier: every node's token seen, then the start signal."""
    from zflow.runtime.launcher import FlowRunner
    from zflow.transport.session import SessionOptions

    graph = Graph.from_dict(rec.graph)
    barrier = FlowRunner(graph, SessionOptions(), log=None)
    client = ControlClient(session)
    if not barrier.wait_ready(session, timeout):
        seen = {keyexprs.parse_node_alive(str(r.ok.key_expr))
                for r in session.liveliness().get(keyexprs.node_alive(rec.flow, rec.instance, "*"), timeout=2.0)
                if r.ok is not None}
        missing = sorted(set(graph.nodes) - seen)
        raise RuntimeFailure(f"instance {rec.key}: nodes not ready after {timeout:g}s: {', '.join(missing)} "
                             f"(see `zflow daemon logs <id>`); the instance is loaded, not started")
    barrier.release(session)
    for d in _alive_first(client, rec):  # one daemon writes the record; the other replicas follow
        with contextlib.suppress(RuntimeFailure):
            client.ask(d, ctl.StateRequest(flow=rec.flow, instance=rec.instance, state="running",
                                           events=["started"]))
            break


def _alive_first(client: ControlClient, rec: InstanceRecord) -> list[str]:
    """Daemons to ask to change a record: its own live daemons first, then any other live one."""
    alive = client.alive()
    return sorted(d for d in rec.daemons() if d in alive) + sorted(d for d in alive if d not in rec.daemons())


def records(session: zenoh.Session, flow: str = "*", instance: str = "*") -> dict[str, InstanceRecord]:
    """The newest copy of each instance record in the daemons' replicated storage (tombstones too)."""
    copies: dict[str, list[InstanceRecord]] = {}
    for answer in ControlClient(session).get_all(keyexprs.instance_record(flow, instance), timeout=3.0):
        with contextlib.suppress(TypeError, KeyError, ValueError):
            rec = InstanceRecord.from_dict(answer)
            copies.setdefault(rec.key, []).append(rec)
    out = {}
    for key, recs in copies.items():
        best = newest(recs)
        if best is not None:
            out[key] = best
    return out


def node_states(session: zenoh.Session) -> dict[str, dict[str, dict[str, str]]]:
    """instance key -> daemon -> node -> state of its host, from every daemon that answers."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for a in ControlClient(session).ask_all(ctl.ListRequest(), timeout=3.0):
        for i in a.get("instances", []) if a.get("ok") else []:
            out.setdefault(f"{i['flow']}/{i['instance']}", {})[a.get("daemon", "?")] = i.get("states", {})
    return out


def placed_states(rec: InstanceRecord, per_daemon: dict[str, dict[str, str]]) -> dict[str, str]:
    """Node states as told by the daemon the record places each node on (a host a stale
    daemon still runs does not make a node look alive)."""
    out = {}
    for node, where in rec.placement.items():
        state = per_daemon.get(where.split("/", 1)[0], {}).get(node)
        if state is not None:
            out[node] = state
    return out


def find_instance(session: zenoh.Session, ref: str) -> tuple[InstanceRecord, dict[str, str], list[str]]:
    """The newest record of an instance (``flow/instance`` or a unique instance id), node states, and
    the daemons involved (placed on, or still running a host of it)."""
    known = {k: r for k, r in records(session).items() if r.state != "deleted"}
    matches = sorted(k for k in known if ref in (k, k.split("/", 1)[1]))
    if not matches:
        hint = did_you_mean(ref, sorted(known) + sorted(k.split("/", 1)[1] for k in known))
        raise UserError(f"no instance {ref!r} on any reachable daemon" + (f" ({hint})" if hint else ""))
    if len(matches) > 1:
        raise UserError(f"instance id {ref!r} is ambiguous: {', '.join(matches)}; use FLOW/INSTANCE")
    rec = known[matches[0]]
    per_daemon = node_states(session).get(rec.key, {})
    daemons = sorted(rec.daemons() | {d for d, states in per_daemon.items() if states})
    return rec, placed_states(rec, per_daemon), daemons


def _each(session: zenoh.Session, daemons: list[str], request: ctl.Request) -> list[str]:
    client = ControlClient(session)
    errors = []
    for d in daemons:
        try:
            client.ask(d, request, timeout=LOAD_TIMEOUT)
        except RuntimeFailure as exc:
            errors.append(str(exc))
    return errors


def start_instance(session: zenoh.Session, ref: str, timeout: float = 60.0) -> InstanceRecord:
    rec, _states, _daemons = find_instance(session, ref)
    errors = _each(session, sorted(rec.daemons()),
                   ctl.StartRequest(flow=rec.flow, instance=rec.instance, wait_start=True, generation=rec.generation))
    if errors:
        raise RuntimeFailure("; ".join(errors))
    release(session, rec, timeout)
    return rec


def stop_instance(session: zenoh.Session, ref: str) -> InstanceRecord:
    rec, _states, daemons = find_instance(session, ref)
    alive = ControlClient(session).alive()
    targets = [d for d in daemons if d in alive] or alive[:1]  # someone records it, also with none left
    errors = _each(session, targets, ctl.StopRequest(flow=rec.flow, instance=rec.instance))
    if errors:
        raise RuntimeFailure("; ".join(errors))
    return rec


def delete_instance(session: zenoh.Session, ref: str) -> InstanceRecord:
    rec, _states, _daemons = find_instance(session, ref)
    _delete_everywhere(ControlClient(session), rec)
    return rec


def _delete_everywhere(client: ControlClient, rec: InstanceRecord) -> None:
    """Every daemon forgets the instance (each holds a replica of its record)."""
    client.ask_all(ctl.DeleteRequest(flow=rec.flow, instance=rec.instance), timeout=LOAD_TIMEOUT)


def list_instances(session: zenoh.Session) -> list[dict[str, Any]]:
    """Every instance in the replicated storage, with its health (``state.health``)."""
    states = node_states(session)
    out = []
    for key, rec in sorted(records(session).items()):
        if rec.state == "deleted":
            continue
        state, down = health(rec, placed_states(rec, states.get(key, {})))
        out.append({"flow": rec.flow, "instance": rec.instance, "state": rec.state, "health": state,
                    "down": down, "revision": rec.revision, "generation": rec.generation,
                    "daemons": sorted(rec.daemons())})
    return out
