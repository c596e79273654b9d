"""A daemon's instance manager: its share of every instance, run as supervised node hosts.

It answers ``zflow/ctl/daemon/<id>/instances/{list,get,load,start,stop,delete,update,state}``
and keeps this daemon's hosts in line with the newest record of each instance:

- nodes start only on a control request (``load``, ``start``, ``update``) or when a restarted
  daemon resumes what its own persisted record ran, and only for the current generation: a
  request that carries an older generation than the one this daemon knows is refused;
- a newer record heard from the replicated storage (``replica.py``) only *fences*: hosts of
  nodes it no longer places here are stopped, never new ones started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from zflow.daemon.state import InstanceRecord
from zflow.errors import UserError
from zflow.transport import control as ctl

STOPPED = ("stopped", "deleted")


def source_events(rec: InstanceRecord, nodes: list[str], where: str) -> list[str]:
    """What restarting ``nodes`` on daemon ``where`` means for their sources: the built-ins that
    keep a checkpoint resume from it; any other source starts over, and says so."""
    from zflow.dataflow.builtins import CHECKPOINTED

    out = []
    for nid in nodes:
        spec = rec.graph["nodes"][nid]
        if spec["kind"] != "source":
            continue
        run = spec["run"]
        if run["kind"] == "builtin" and run["target"] in CHECKPOINTED:
            out.append(f"source {nid} resumes from its checkpoint on {where}")
        else:
            out.append(f"source {nid} restarted from the beginning on {where} (what it sent before may come again)")
    return out


class InstanceManager:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.id: str = daemon.cfg.id
        self.runners: dict[str, list[Any]] = {}
        self.lock = threading.RLock()

    @property
    def replica(self) -> Any:
        return self.daemon.replica

    def handlers(self) -> dict[str, Callable[[Any], ctl.Message]]:
        """Verb -> handler of its typed request (``transport/control.py``)."""
        return {
            "instances/list": self.list_instances,
            "instances/get": self.get_instance,
            "instances/load": self.load_instance,
            "instances/start": self.start_instance,
            "instances/stop": self.stop_instance,
            "instances/delete": self.delete_instance,
            "instances/update": self.update_instance,
            "instances/state": self.set_state,
        }

    # -- reading ----------------------------------------------------------------------------------
    def _record(self, request: ctl.InstanceRequest) -> InstanceRecord:
        key = request.key
        rec = self.replica.get(key)
        if rec is None or rec.state == "deleted":
            raise UserError(f"no instance {key!r} on daemon {self.id!r}")
        return rec

    def node_states(self, key: str) -> dict[str, str]:
        states: dict[str, str] = {}
        with self.lock:
            for runner in self.runners.get(key, []):
                states.update(runner.node_states())
        return states

    def running(self) -> list[dict[str, str]]:
        with self.lock:
            keys = list(self.runners)
        return [{"instance": k, "node": n, "state": s} for k in keys for n, s in self.node_states(k).items()]

    def list_instances(self, _request: ctl.ListRequest) -> ctl.ListAnswer:
        return ctl.ListAnswer(daemon=self.id, instances=[
            ctl.InstanceSummary(flow=r.flow, instance=r.instance, state=r.state, revision=r.revision,
                                generation=r.generation, nodes=r.nodes_on(self.id), daemons=sorted(r.daemons()),
                                states=self.node_states(r.key))
            for r in self.replica.live().values()
        ])

    def get_instance(self, request: ctl.GetRequest) -> ctl.GetAnswer:
        rec = self._record(request)
        return ctl.GetAnswer(daemon=self.id, record=rec.to_dict(), nodes=self.node_states(rec.key))

    # -- generations --------------------------------------------------------------------------------
    def check_generation(self, key: str, created: float | None, generation: int, what: str) -> None:
        """Refuse a request made for an older generation (or incarnation) than the one known here."""
        cur = self.replica.get(key)
        if cur is None or (created is not None and created > cur.created):
            return
        if (created is not None and created < cur.created) or generation < cur.generation:
            raise UserError(f"instance {key}: {what} carries stale generation {generation} "
                            f"(daemon {self.id} knows generation {cur.generation}); refused")

    # -- control requests -------------------------------------------------------------------------
    def load_instance(self, request: ctl.LoadRequest) -> ctl.NodesAnswer:
        rec = InstanceRecord.from_dict(request.record)
        self.check_generation(rec.key, rec.created, rec.generation, "load")
        self.daemon.fetch_bundles(rec)
        with self.lock:
            cur = self.replica.get(rec.key)
            if cur is not None and cur.state not in STOPPED and self.runners.get(rec.key):
                raise UserError(f"instance {rec.key!r} is already loaded on daemon {self.id!r}")
            self.replica.put(rec)
            try:
                self._run(rec, rec.nodes_on(self.id), wait_start=request.wait_start)
            except BaseException:
                self._stop_runners(rec.key)
                raise
        self.daemon.log(f"loaded {rec.key}: {', '.join(rec.nodes_on(self.id)) or '(no nodes here)'}")
        self.daemon.submit(self.daemon.fetch_bundles, rec, True)
        return ctl.NodesAnswer(nodes=rec.nodes_on(self.id))

    def start_instance(self, request: ctl.StartRequest) -> ctl.NodesAnswer:
        rec = self._record(request)
        generation = rec.generation if request.generation is None else request.generation
        self.check_generation(rec.key, None, generation, "start")
        with self.lock:
            if not self.runners.get(rec.key):
                self._run(rec, rec.nodes_on(self.id), wait_start=request.wait_start)
        return ctl.NodesAnswer(nodes=rec.nodes_on(self.id))

    def stop_instance(self, request: ctl.StopRequest) -> ctl.Done:
        with self.lock:
            rec = self._record(request)
            self._stop_runners(rec.key)
            if rec.state != "stopped":
                new = InstanceRecord.from_dict(rec.to_dict())
                new.state = "stopped"
                self.replica.commit(new)
        self.daemon.log(f"stopped {rec.key}")
        return ctl.Done()

    def delete_instance(self, request: ctl.DeleteRequest) -> ctl.DeleteAnswer:
        key = request.key
        with self.lock:
            self._stop_runners(key)
            rec = self.replica.get(key)
            existed = rec is not None and rec.state != "deleted"
            if existed:
                tomb = InstanceRecord.from_dict(rec.to_dict())
                tomb.state = "deleted"
                tomb.graph = {}
                tomb.events = []
                self.replica.commit(tomb)
        self.daemon.log(f"deleted {key}")
        return ctl.DeleteAnswer(existed=existed)

    def set_state(self, request: ctl.StateRequest) -> ctl.Done:
        with self.lock:
            rec = InstanceRecord.from_dict(self._record(request).to_dict())
            rec.state = request.state
            for what in request.events:
                rec.event(what)
            self.replica.commit(rec)
        return ctl.Done()

    def update_instance(self, request: ctl.UpdateRequest) -> ctl.UpdateAnswer:
        """Adopt a newer record (sent by the daemon that re-placed nodes): start the nodes it now
        places here, stop those it moved away."""
        new = InstanceRecord.from_dict(request.record)
        self.check_generation(new.key, new.created, new.generation, "update")
        self.daemon.fetch_bundles(new)
        with self.lock:
            self.replica.merge(new)
            rec = self.replica.get(new.key)
            if rec is None or rec.created != new.created:  # deleted and created again meanwhile
                return ctl.UpdateAnswer(adopted=False, started=[])
            # the copy held may be newer than the one sent (an event written since), never of
            # another generation: check_generation refused older ones, and a newer one was merged
            # a re-placement holds its nodes at the start barrier: the sender puts the start
            # signal once all of them (on every daemon) have subscribed
            started = self.converge(rec, may_start=True, hold=request.barrier)
        if started:
            self.daemon.log(f"{new.key}: now running {', '.join(started)} (generation {new.generation})")
        return ctl.UpdateAnswer(adopted=True, started=started)

    # -- keeping hosts in line with the record ----------------------------------------------------
    def fence(self, rec: InstanceRecord) -> None:
        """A newer record was heard: stop what it no longer places here (never start anything)."""
        stopped = self.converge(rec, may_start=False)
        if stopped:
            self.daemon.log(f"{rec.key}: generation {rec.generation} stops {', '.join(stopped)} here")

    def converge(self, rec: InstanceRecord, may_start: bool, hold: bool = False) -> list[str]:
        """Stop hosts of nodes not placed here any more; with ``may_start``, start the nodes
        placed here that do not run (``hold``: they wait for the start signal). Returns the
        started (or, without ``may_start``, stopped) nodes."""
        with self.lock:
            here = set() if rec.state in STOPPED else set(rec.nodes_on(self.id))
            stale = [r for r in self.runners.get(rec.key, []) if set(r.node_ids) - here]
            stopped = sorted({n for r in stale for n in r.node_ids})
            for runner in stale:
                runner.stop(timeout=3.0)
                self.runners[rec.key].remove(runner)
            if not self.runners.get(rec.key):
                self.runners.pop(rec.key, None)
            if not may_start:
                return stopped
            running = {n for r in self.runners.get(rec.key, []) for n in r.node_ids}
            added = sorted(here - running)
            if added:
                self._run(rec, added, wait_start=hold or rec.state == "loaded")
            return added

    def resume(self, persisted: dict[str, InstanceRecord]) -> None:
        """After a restart: run again what this daemon's own record ran, as far as the newest
        record (synced from the other replicas) still places it here."""
        for key, old in persisted.items():
            rec = self.replica.get(key)
            if rec is None or rec.state in STOPPED or old.state in STOPPED or rec.created != old.created:
                continue
            mine = sorted(set(rec.nodes_on(self.id)) & set(old.nodes_on(self.id)))
            moved = sorted(set(old.nodes_on(self.id)) - set(mine))
            if moved:
                self.daemon.log(f"{key}: generation {rec.generation} placed {', '.join(moved)} elsewhere: "
                                "not resuming them")
            if not mine:
                continue
            self.daemon.log(f"resuming {key}: {', '.join(mine)}")
            try:
                with self.lock:
                    self._run(rec, mine, wait_start=rec.state == "loaded")
            except UserError as exc:
                self.daemon.log(f"cannot resume {key}: {exc}")
                continue
            whats = source_events(rec, mine, self.id)
            if whats and rec.state == "running":
                new = InstanceRecord.from_dict(rec.to_dict())
                for what in whats:
                    new.event(f"daemon {self.id} restarted; {what}", kind="source-restarted", daemon=self.id)
                self.replica.commit(new)

    # -- node hosts -------------------------------------------------------------------------------
    def _run(self, rec: InstanceRecord, nodes: list[str], wait_start: bool) -> None:
        """One runner per process group: moving one group away stops only that group's host."""
        from zflow.dataflow.graph import Graph

        wanted = set(nodes)
        for members in Graph.from_dict(rec.graph).groups().values():
            mine = [n for n in members if n in wanted]
            if mine:
                self.runners.setdefault(rec.key, []).append(self.daemon.start_nodes(rec, mine, wait_start))

    def _stop_runners(self, key: str) -> None:
        for runner in self.runners.pop(key, []):
            runner.stop(timeout=3.0)

    def stop_all(self) -> None:
        with self.lock:
            for key in list(self.runners):
                self._stop_runners(key)

    def record_failure(self, name: str, code: int | None, restarts: int, log_lines: list[str]) -> str | None:
        """A node host failed for good (restart policy exhausted): an event in the instance record."""
        with self.lock:
            for key, runners in self.runners.items():
                runner = next((r for r in runners if name in r.children), None)
                if runner is None:
                    continue
                group = name.split("/", 2)[-1].split("#")[0]
                nodes = ", ".join(runner.groups().get(group, [group]))
                cur = self.replica.get(key)
                if cur is None:
                    return None
                rec = InstanceRecord.from_dict(cur.to_dict())
                what = (f"node {nodes} failed on daemon {self.id} (exit {code})"
                        + (f" after {restarts} restart(s)" if restarts else ""))
                rec.event(what, kind="node-failed", node=nodes, daemon=self.id, exit_code=code, log=log_lines)
                self.replica.commit(rec)
                return f"{key}: {what}"
        return None
