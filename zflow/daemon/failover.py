"""Losing a daemon: who acts, and how its nodes are re-placed.

Every daemon watches the others' liveliness tokens and holds a replica of every instance
record, so when one goes away the *lowest-id live daemon* leads for every instance (also for
instances none of whose nodes it runs, and when every node was on the lost daemon). For each
instance with nodes on daemons that are no longer alive it applies the instance's policy:

- ``replace``: place those nodes again (the scheduler, the instance's trusted daemons), bump the
  instance **generation**, write the record to the replicated storage and send it with
  ``instances/update`` to the daemons that must start nodes; sources say whether they resume
  from a checkpoint or start over;
- ``stop``: put the instance's stop signal; ``ignore``: record the loss.

A daemon that comes back learns the current generation from any replica (``Replica.sync``)
before resuming anything, and stops hosts of nodes that a newer generation moved away.
A client daemon that has lost its router does not act: it cannot tell who is gone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import zenoh

from zflow import keyexprs
from zflow.daemon.instances import source_events
from zflow.daemon.state import InstanceRecord
from zflow.transport import control as ctl
from zflow.transport.control_client import ControlClient

UPDATE_TIMEOUT = 180.0
READY_TIMEOUT = 30.0  # for re-placed nodes to subscribe before the start signal
RECHECK_S = 0.3  # between the two liveliness queries that must both miss a daemon  # a daemon may have to fetch a bundle and pip-install its requirements


class Failover:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.id: str = daemon.cfg.id
        self._reconcile_pending = False
        self._lock = threading.Lock()  # one handling at a time: a second loss sees the first's result

    # -- watching tokens ----------------------------------------------------------------------------
    def on_daemon_token(self, sample: Any) -> None:
        """On Zenoh's thread: hand over at once."""
        other = keyexprs.parse_daemon_alive(str(sample.key_expr))
        if other is None or other == self.id:
            return
        if sample.kind == zenoh.SampleKind.DELETE:
            self.daemon.log(f"daemon {other} is gone")
            self.daemon.submit(self.on_daemon_lost, other)
        elif self.daemon.ready.is_set() and not self._reconcile_pending:
            self._reconcile_pending = True
            self.daemon.submit(self.reconcile)

    def connected(self) -> bool:
        if self.daemon.opts.mode != "client":
            return True
        return bool(self.daemon.session.info.routers_zid())

    def _alive(self) -> set[str] | None:
        """The live daemons. A liveliness query under load can come back short, and acting on a
        daemon wrongly taken for dead moves (and restarts) its nodes: a daemon counts as dead
        only when two queries ``RECHECK_S`` apart both miss it, and this one must be in both."""
        client = ControlClient(self.daemon.session)
        sets: list[set[str]] = []
        for attempt in range(2):
            if attempt:
                time.sleep(RECHECK_S)
            alive = set(client.alive())
            for _ in range(10):
                if self.id in alive or not self.connected():
                    break
                time.sleep(0.3)
                alive = set(client.alive())
            if self.id not in alive:
                return None
            sets.append(alive)
        return sets[0] | sets[1]

    def on_daemon_lost(self, lost: str) -> None:
        time.sleep(0.2)
        if not self.connected():
            self.daemon.log(f"daemon {lost} gone while this daemon has no router: not re-placing")
            return
        alive = self._alive()
        if alive is None or lost in alive:
            self.daemon.log(f"daemon {lost}'s token went away but the alive set is {sorted(alive or ())}: "
                            "not acting")
            return
        self.handle_dead(alive, lost)

    def reconcile(self) -> None:
        """A daemon appeared (or a partition healed): take newer records from the other replicas
        (hosts of nodes moved away meanwhile stop); the leader retries nodes left unplaced."""
        self._reconcile_pending = False
        for rec in self.daemon.replica.sync():
            self.daemon.log(f"{rec.key}: adopting generation {rec.generation} revision {rec.revision} from a peer")
            self.daemon.manager.fence(rec)
        alive = self._alive() if self.connected() else None
        if alive is not None:
            self.handle_dead(alive, None)

    # -- acting as the leader ------------------------------------------------------------------------
    def handle_dead(self, alive: set[str], lost: str | None) -> None:
        """If this daemon leads (lowest live id), deal with every instance that has nodes on
        daemons that are not alive; ``lost`` is the daemon whose loss was just seen."""
        if min(alive) != self.id:
            return
        with self._lock:
            self._handle_dead(alive, lost)

    def _handle_dead(self, alive: set[str], lost: str | None) -> None:
        for rec in list(self.daemon.replica.live().values()):
            if rec.state not in ("running", "loaded"):
                continue
            dead = sorted(rec.daemons() - alive)
            if not dead or (lost is None and rec.on_daemon_loss != "replace"):
                continue
            if rec.on_daemon_loss != "replace" and lost not in dead:
                continue
            self.daemon.log(f"{rec.key}: nodes on {', '.join(dead)}, which are gone: "
                            f"{rec.on_daemon_loss} (this daemon leads)")
            try:
                self.replace(rec, dead, alive, lost)
            except Exception as exc:
                self.daemon.log(f"re-placing {rec.key} failed: {exc}")

    def replace(self, rec: InstanceRecord, dead: list[str], alive: set[str], lost: str | None) -> InstanceRecord:
        from zflow.dataflow.graph import Graph
        from zflow.scheduler.planning import PlacementPlan, place_graph

        new = InstanceRecord.from_dict(rec.to_dict())
        lost_nodes = sorted(n for d in dead for n in rec.nodes_on(d))
        moved: dict[str, str] = {}
        if rec.on_daemon_loss == "ignore":  # each loss recorded once, also one whose leader died first
            told = {e.get("daemon") for e in rec.events if e.get("kind") == "daemon-lost"}
            for gone in (g for g in dead if g not in told):
                new.event(f"daemon {gone} lost; nodes {', '.join(rec.nodes_on(gone))} left unplaced "
                          "(on_daemon_loss: ignore)", kind="daemon-lost", daemon=gone)
        elif rec.on_daemon_loss == "stop":
            self.daemon.session.put(keyexprs.instance_ctl(rec.flow, rec.instance, "stop"), b"")
            new.state = "stopped"
            new.event(f"daemon {lost} lost; instance stopped (on_daemon_loss: stop)", kind="daemon-lost",
                      daemon=lost)
        else:
            graph = Graph.from_dict(rec.graph)
            plan = PlacementPlan(policy=rec.policy, secret=self.daemon.secret, trusted=rec.trusted,
                                 exclude=tuple(dead))
            placed = place_graph(self.daemon.session, graph, plan, lost_nodes)
            for d in placed.decisions:
                for m in placed.members[d.node]:
                    was = rec.placement[m].split("/", 1)[0]
                    if d.pool and d.daemon:
                        new.placement[m] = d.pool
                        moved[m] = d.daemon
                        new.event(f"daemon {was} lost; node {m} re-placed on {d.daemon}", kind="node-replaced",
                                  node=m, daemon=d.daemon)
                    else:
                        why = "; ".join(f"{k}: {v}" for k, v in d.rejected.items()) or "no daemon left"
                        new.event(f"daemon {was} lost; node {m} could not be re-placed: {why}",
                                  kind="node-unplaced", node=m)
            for where in sorted(set(moved.values())):
                for what in source_events(rec, sorted(n for n, w in moved.items() if w == where), where):
                    new.event(what, kind="source-restarted", daemon=where)
            if moved:
                new.generation += 1
        committed = self.daemon.replica.commit(new)
        self.daemon.log(f"{rec.key}: generation {committed.generation}: "
                        + "; ".join(e["what"] for e in committed.events[-max(1, len(lost_nodes)):]))
        self.daemon.manager.fence(committed)
        # Re-placed nodes wait at a start barrier, as at creation: a consumer re-placed with its
        # source subscribes before the source sends. Only tokens declared from now on count:
        # the stale copy's may still be declared where the router has not yet dropped it.
        with _Arrivals(self.daemon.session, committed) as arrivals:
            started = self._send(committed, sorted(set(moved.values())))
            missing = arrivals.wait(started, READY_TIMEOUT)
        if missing:  # start what is there rather than nothing; status shows the rest
            self.daemon.log(f"{rec.key}: re-placed node(s) {', '.join(missing)} not ready after "
                            f"{READY_TIMEOUT:g}s; starting the others")
        if started:
            self.daemon.session.put(keyexprs.instance_ctl(rec.flow, rec.instance, "start"), b"")
        return committed

    def _send(self, rec: InstanceRecord, targets: list[str]) -> list[str]:
        """Tell the daemons that must start re-placed nodes (the record is also in the storage);
        they hold them at the start barrier. Returns the nodes they started."""
        client = ControlClient(self.daemon.session)
        request = ctl.UpdateRequest(record=rec.to_dict(), barrier=True)
        started: list[str] = []
        for target in targets:
            try:
                if target == self.id:
                    started += self.daemon.manager.update_instance(request).started
                else:
                    started += client.ask(target, request, timeout=UPDATE_TIMEOUT).get("started", [])
            except Exception as exc:  # RuntimeFailure or worse; status shows the node not running
                self.daemon.log(f"{rec.key}: daemon {target} did not take its re-placed nodes: {exc}")
                with contextlib.suppress(Exception):
                    cur = self.daemon.replica.get(rec.key)
                    if cur is not None:
                        note = InstanceRecord.from_dict(cur.to_dict())
                        note.event(f"daemon {target} did not start its re-placed nodes: {exc}", kind="node-unplaced",
                                   daemon=target)
                        self.daemon.replica.commit(note)
        return sorted(started)


class _Arrivals:
    """Node liveliness tokens of an instance declared after this is opened."""

    def __init__(self, session: Any, rec: InstanceRecord):
        self.session = session
        self.key = keyexprs.node_alive(rec.flow, rec.instance, "*")
        self.seen: set[str] = set()
        self.changed = threading.Condition()
        self.sub: Any = None

    def __enter__(self) -> _Arrivals:
        self.sub = self.session.liveliness().declare_subscriber(self.key, self._on_token, history=False)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.sub.undeclare()

    def _on_token(self, sample: Any) -> None:
        node = keyexprs.parse_node_alive(str(sample.key_expr))
        if node is not None and sample.kind == zenoh.SampleKind.PUT:
            with self.changed:
                self.seen.add(node)
                self.changed.notify_all()

    def wait(self, nodes: list[str], timeout: float) -> list[str]:
        """The nodes whose token did not come within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not set(nodes) <= self.seen and time.monotonic() < deadline:
                self.changed.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return sorted(set(nodes) - self.seen)
