"""``zflow daemon run``: the long-running host on each device.

It joins Zenoh (client, peer, or as the router itself), declares its liveliness token and
answers control queries under ``zflow/ctl/daemon/<id>/...``:

- ``status``: identity, load, free capacity per pool, running nodes, a bootstrap token claim
  (fingerprint and nonce proof, never the token: auth.py);
- ``instances/{list,get,load,start,stop,delete,update,state}``: its share of instances (load
  and update only for records a trusted deployer signed: signing.py);
- ``logs``: recent lines from itself and its node hosts.

It also serves the bundles it has cached, watches other daemons' tokens and, when one goes
away, re-places that daemon's nodes if it is the lowest-id survivor of the instance.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zenoh

from zflow import codec, keyexprs
from zflow.daemon.auth import token_claim
from zflow.daemon.bundles import BundleCache
from zflow.daemon.client import ControlClient
from zflow.daemon.identity import Identity, available_memory
from zflow.daemon.signing import Verifier
from zflow.daemon.state import InstanceRecord, RecordStore
from zflow.errors import RuntimeFailure, UserError
from zflow.runtime.signals import StopSignal
from zflow.scheduler.model import Pool
from zflow.transport.session import (
    Mode,
    SessionOptions,
    config_listen,
    open_session,
    private_socket,
)

log = logging.getLogger("zflow.daemon")
FAILURE_LOG_LINES = 20  # output lines kept with a node-failure event


class Daemon:
    def __init__(self, cfg: Identity | Any, echo: bool = True, secret: bytes | None = None):
        self.cfg: Identity = cfg.resolve() if hasattr(cfg, "resolve") else cfg
        self.echo = echo
        self.secret = secret
        self.started = time.time()
        self.logs: collections.deque[str] = collections.deque(maxlen=2000)
        self.records: dict[str, InstanceRecord] = {}
        self.runners: dict[str, list[Any]] = {}
        self._lock = threading.RLock()
        self._stack = contextlib.ExitStack()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="zflow-daemon")
        self._local_endpoint: str | None = None
        self.session: Any = None
        self.ready = threading.Event()
        self._reconcile_pending = threading.Event()

    # -- sessions ---------------------------------------------------------------------------------
    def session_options(self) -> SessionOptions:
        z = self.cfg.zenoh
        mode: Mode = "router" if self.cfg.router or z.mode == "router" else ("peer" if z.mode == "peer" else "client")
        listen = list(z.listen)
        if mode == "router":  # listen only where told: the config file's endpoints are kept
            listen = listen or config_listen(z.config_file, mode) or ["tcp/0.0.0.0:7447"]
            self._local_endpoint = self._stack.enter_context(private_socket(os.path.join(self.cfg.data_dir, "run")))
            listen.append(self._local_endpoint)
        return SessionOptions(mode=mode, listen=listen, connect=list(z.connect), config_file=z.config_file,
                              extra={"transport/link/tx/lease": z.lease_ms})

    def node_session(self) -> SessionOptions:
        """How this daemon's node hosts join Zenoh: through the same router the daemon uses."""
        z = self.cfg.zenoh
        if self._local_endpoint:
            return SessionOptions(mode="client", connect=[self._local_endpoint])
        quiet: dict[str, Any] = {"listen/endpoints": []}  # node hosts listen nowhere, whatever the file says
        if z.mode == "peer":
            return SessionOptions(mode="peer", connect=list(z.connect), config_file=z.config_file, extra=quiet)
        return SessionOptions(mode="client", connect=list(z.connect), config_file=z.config_file, extra=quiet)

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> Daemon:
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _check_unique_id(self) -> None:
        """Two daemons with one id would answer for each other: refuse to be the second.

        A token left by a crashed predecessor vanishes within the lease, so wait that long first.
        """
        deadline = time.monotonic() + self.cfg.zenoh.lease_ms / 1000 + 1.0
        while self.cfg.id in self.client.alive(timeout=0.5):
            if time.monotonic() > deadline:
                raise UserError(f"a daemon with id {self.cfg.id!r} is already running on this Zenoh "
                                "network; give this one another --id")
            time.sleep(0.2)

    def _start(self) -> Daemon:
        from zflow.runtime.supervisor import Supervisor

        data = self.cfg.data_dir
        os.makedirs(data, exist_ok=True)
        self.store = RecordStore(data)
        self.verifier, trust = Verifier.for_daemon(self.cfg.trusted_deployers)
        self.log(trust)
        self.bundles = BundleCache(os.path.join(data, "bundles"))
        self.supervisor = self._stack.enter_context(Supervisor(log=self._child_log, on_final=self._on_child_final))
        self.opts = self.session_options()
        self.session = self._stack.enter_context(open_session(self.opts))
        self.client = ControlClient(self.session)
        self._check_unique_id()
        ctl = self.session.declare_queryable(keyexprs.daemon_ctl(self.cfg.id, "**"), self._on_query)
        self._stack.callback(ctl.undeclare)
        serve = self.session.declare_queryable(keyexprs.bundle("*"), self._on_bundle_query)
        self._stack.callback(serve.undeclare)
        if self.cfg.scheduler:
            from zflow.scheduler.service import SchedulerService

            svc = SchedulerService(self.session, self.secret)
            self._stack.callback(svc.close)
        self._resume()
        token = self.session.liveliness().declare_token(keyexprs.daemon_alive(self.cfg.id))
        self._stack.callback(token.undeclare)
        deadline = time.monotonic() + 3.0  # ready means visible to the others, not just declared
        while self.cfg.id not in self.client.alive(timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.02)
        # history=True: tokens declared before this subscriber must also report their removal
        watch = self.session.liveliness().declare_subscriber(keyexprs.daemon_alive("*"), self._on_daemon_token,
                                                             history=True)
        self._stack.callback(watch.undeclare)
        self._stack.callback(self._stop_all_runners)
        self.ready.set()
        self.log(f"daemon {self.cfg.id} ready ({self.opts.mode}, arch {self.cfg.arch}, "
                 f"{self.cfg.cpus:g} CPU)")
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._stack.close()

    def serve_forever(self, stop: threading.Event | StopSignal | None = None) -> None:
        waiter = stop or threading.Event()
        while not waiter.wait(0.5):
            pass

    # -- logs -------------------------------------------------------------------------------------
    def log(self, line: str) -> None:
        self._child_log("daemon", line)

    def _child_log(self, name: str, line: str) -> None:
        text = f"{time.strftime('%H:%M:%S')} [{name}] {line}"
        self.logs.append(text)
        if self.echo:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def _child_lines(self, name: str, count: int = FAILURE_LOG_LINES) -> list[str]:
        """The last lines a child wrote (its own output, not the supervisor's ``--`` events)."""
        tag = f" [{name}] "
        out = [t.split(tag, 1)[1] for t in list(self.logs) if tag in t]
        return [t for t in out if not t.startswith("-- ")][-count:]

    # -- node failures ------------------------------------------------------------------------------
    def _on_child_final(self, child: Any) -> None:
        if child.state == "failed":  # on the supervisor's watcher thread: hand over at once
            self._pool.submit(self._record_failure, child.name, child.exit_code, child.restarts)

    def _record_failure(self, name: str, code: int | None, restarts: int) -> None:
        """A node host failed for good (restart policy exhausted): an event in the instance record."""
        with self._lock:
            for key, runners in self.runners.items():
                runner = next((r for r in runners if name in r.children), None)
                if runner is None:
                    continue
                group = name.split("/", 2)[-1].split("#")[0]
                nodes = ", ".join(runner.groups().get(group, [group]))
                rec = self.records[key]
                what = (f"node {nodes} failed on daemon {self.cfg.id} (exit {code})"
                        + (f" after {restarts} restart(s)" if restarts else ""))
                rec.event(what, kind="node-failed", node=nodes, daemon=self.cfg.id, exit_code=code,
                          log=self._child_lines(name))
                self.store.save(rec)
                break
            else:
                return
        self.log(f"{key}: {what}")

    # -- queries ----------------------------------------------------------------------------------
    def _on_query(self, query: Any) -> None:
        self._pool.submit(self._answer, query)

    def _answer(self, query: Any) -> None:
        verb = str(query.key_expr).split("/", 4)[-1]  # zflow/ctl/daemon/<id or *>/<verb...>
        key = keyexprs.daemon_ctl(self.cfg.id, *verb.split("/"))
        try:
            request = codec.decode(query.payload.to_bytes(), str(query.encoding)) if query.payload else {}
            handler = self._handlers().get(verb)
            if handler is None:
                answer = {"ok": False, "error": f"unknown request {verb!r}"}
            else:
                answer = {"ok": True, **handler(request or {})}
        except (UserError, RuntimeFailure) as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("request %s failed", verb)
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        payload, enc = codec.encode(answer)
        with contextlib.suppress(Exception):
            query.reply(key, payload, encoding=enc)

    def _handlers(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "logs": lambda r: {"lines": list(self.logs)[-int(r.get("lines", 200)):]},
            "instances/list": self.list_instances,
            "instances/get": self.get_instance,
            "instances/load": self.load_instance,
            "instances/start": self.start_instance,
            "instances/stop": self.stop_instance,
            "instances/delete": self.delete_instance,
            "instances/update": self.update_instance,
            "instances/state": self.set_state,
        }

    def _on_bundle_query(self, query: Any) -> None:
        digest = str(query.key_expr).rsplit("/", 1)[-1]
        if self.bundles.has(digest):
            self._pool.submit(self._serve_bundle, query, digest)

    def _serve_bundle(self, query: Any, digest: str) -> None:
        payload = self.bundles.payload(digest)
        if payload is not None:
            with contextlib.suppress(Exception):
                query.reply(keyexprs.bundle(digest), payload, encoding=codec.MSGPACK)

    # -- status -----------------------------------------------------------------------------------
    def free_pools(self) -> list[Pool]:
        """Configured pools minus what this daemon's running nodes asked for, capped by live memory."""
        from zflow.scheduler.model import demands_for

        pools = {p.name: p for p in self.cfg.pool_list()}
        default = next(iter(pools))
        with self._lock:
            records = list(self.records.values())
        for rec in records:
            if rec.state == "stopped":
                continue
            mine = rec.nodes_on(self.cfg.id)
            if not mine:
                continue
            from zflow.dataflow.graph import Graph

            for d in demands_for(Graph.from_dict(rec.graph), mine):
                name = rec.placement.get(d.node, "").split("/", 1)[-1]
                pool = pools.get(name) or pools[default]
                pool.cpu -= d.cpu
                pool.memory -= d.memory
                pool.gpu -= d.gpu
        avail = available_memory()
        for pool in pools.values():
            if avail is not None:
                pool.memory = min(pool.memory, avail)
        return list(pools.values())

    def status(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        running = []
        with self._lock:
            for key, runners in self.runners.items():
                for runner in runners:
                    for node, state in runner.node_states().items():
                        running.append({"instance": key, "node": node, "state": state})
        return {
            "id": self.cfg.id, "site": self.cfg.site, "arch": self.cfg.arch, "labels": self.cfg.labels,
            "cpus": self.cfg.cpus, "memory": self.cfg.memory, "gpus": self.cfg.gpus,
            "load": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
            "memory_available": available_memory(),
            "pools": [p.to_dict() for p in self.free_pools()],
            "running": running, "instances": len(self.records),
            "token": token_claim(self.cfg.bootstrap_token(), (request or {}).get("nonce")),
            "uptime": time.time() - self.started,
            "pid": os.getpid(),
        }

    # -- instances --------------------------------------------------------------------------------
    def _record(self, request: dict[str, Any]) -> InstanceRecord:
        key = f"{request.get('flow')}/{request.get('instance')}"
        rec = self.records.get(key)
        if rec is None:
            raise UserError(f"no instance {key!r} on daemon {self.cfg.id!r}")
        return rec

    def list_instances(self, _request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {"instances": [
                {"flow": r.flow, "instance": r.instance, "state": r.state, "revision": r.revision,
                 "nodes": r.nodes_on(self.cfg.id), "daemons": sorted(r.daemons())}
                for r in self.records.values()
            ]}

    def get_instance(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rec = self._record(request)
            states = {}
            for runner in self.runners.get(rec.key, []):
                states.update(runner.node_states())
            return {"record": rec.to_dict(), "nodes": states}

    def _fetch_bundles(self, rec: InstanceRecord) -> None:
        """Fetch (and install) this daemon's bundles before taking the lock: status stays responsive."""
        self._authorize(rec)
        for nid in rec.nodes_on(self.cfg.id):
            bundle = rec.graph["nodes"][nid].get("deploy", {}).get("bundle")
            if bundle:
                self.bundles.ensure(self.session, bundle["digest"])

    def _authorize(self, rec: InstanceRecord) -> None:
        """Only what a trusted deployer signed runs here (signing.py). Checked at the two doors
        every record passes, whoever sent it: before its bundles are fetched (load, update: so
        before anything is written) and before any of its nodes starts (``_run``)."""
        self.verifier.check(rec.flow, rec.instance, rec.graph, rec.signature)

    def load_instance(self, request: dict[str, Any]) -> dict[str, Any]:
        rec = InstanceRecord.from_dict(request["record"])
        self._fetch_bundles(rec)
        with self._lock:
            old = self.records.get(rec.key)
            if old is not None and old.state != "stopped" and self.runners.get(rec.key):
                raise UserError(f"instance {rec.key!r} is already loaded on daemon {self.cfg.id!r}")
            self.records[rec.key] = rec
            self.store.save(rec)
            try:
                self._run(rec, rec.nodes_on(self.cfg.id), wait_start=bool(request.get("wait_start", True)))
            except BaseException:
                self._stop_runners(rec.key)
                self.records.pop(rec.key, None)
                self.store.delete(rec.flow, rec.instance)
                raise
        self.log(f"loaded {rec.key}: {', '.join(rec.nodes_on(self.cfg.id)) or '(no nodes here)'}")
        return {"nodes": rec.nodes_on(self.cfg.id)}

    def start_instance(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rec = self._record(request)
            if not self.runners.get(rec.key):
                self._run(rec, rec.nodes_on(self.cfg.id), wait_start=bool(request.get("wait_start", True)))
            return {"nodes": rec.nodes_on(self.cfg.id)}

    def stop_instance(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rec = self._record(request)
            self._stop_runners(rec.key)
            rec.state = "stopped"
            self.store.save(rec)
        self.log(f"stopped {rec.key}")
        return {}

    def delete_instance(self, request: dict[str, Any]) -> dict[str, Any]:
        key = f"{request.get('flow')}/{request.get('instance')}"
        with self._lock:
            self._stop_runners(key)
            rec = self.records.pop(key, None)
            if rec is not None:
                self.store.delete(rec.flow, rec.instance)
        self.log(f"deleted {key}")
        return {"existed": rec is not None}

    def set_state(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rec = self._record(request)
            rec.state = str(request["state"])
            for what in request.get("events", []):
                rec.event(what)
            self.store.save(rec)
        return {}

    def update_instance(self, request: dict[str, Any]) -> dict[str, Any]:
        """Adopt a newer record: start nodes newly placed here, stop nodes moved away."""
        new = InstanceRecord.from_dict(request["record"])
        self._fetch_bundles(new)
        with self._lock:
            old = self.records.get(new.key)
            if old is not None and old.revision > new.revision:
                return {"adopted": False}
            before = set(old.nodes_on(self.cfg.id)) if old else set()
            after = set(new.nodes_on(self.cfg.id))
            if old is not None:
                new.adopt_events(old)
            self.records[new.key] = new
            self.store.save(new)
            if new.state == "stopped" or before - after:
                self._stop_runners(new.key)
                before = set()
            added = sorted(after - before)
            if added and new.state != "stopped":
                self._run(new, added, wait_start=False)
        if added:
            self.log(f"{new.key}: now running {', '.join(added)} (revision {new.revision})")
        return {"adopted": True, "started": added}

    def _run(self, rec: InstanceRecord, nodes: list[str], wait_start: bool) -> None:
        from zflow.daemon.identity import DAEMON_ENV, SITE_ENV
        from zflow.daemon.runner import DaemonRunner, localize
        from zflow.dataflow.graph import Graph

        if not nodes:
            return
        self._authorize(rec)
        graph = Graph.from_dict(rec.graph)
        files_dirs: dict[str, str] = {}
        pythons: dict[str, str] = {}
        for nid in nodes:
            bundle = graph.nodes[nid].deploy.get("bundle")
            if bundle:
                files_dirs[nid] = str(self.bundles.ensure(self.session, bundle["digest"]))
                py = self.bundles.python_for(bundle["digest"])
                if py:
                    pythons[nid] = py
        graph = localize(graph, nodes, files_dirs)
        opts = self.node_session()
        env = {DAEMON_ENV: self.cfg.id, SITE_ENV: self.cfg.site}
        if opts.connect:  # code that opens its own session (Ryax actions) joins where the nodes do
            env["ZFLOW_CONNECT"] = ",".join(opts.connect)
        runner = DaemonRunner(graph, opts, node_ids=nodes, wait_start=wait_start,
                              supervisor=self.supervisor, pythons=pythons, env=env)
        runner.start()
        self.runners.setdefault(rec.key, []).append(runner)

    def _stop_runners(self, key: str) -> None:
        for runner in self.runners.pop(key, []):
            runner.stop(timeout=3.0)

    def _stop_all_runners(self) -> None:
        with self._lock:
            for key in list(self.runners):
                self._stop_runners(key)

    # -- resume, reconciliation and failure handling --------------------------------------------
    def _newest(self, rec: InstanceRecord) -> InstanceRecord:
        """The newest copy of a record among this daemon and the other participants that answer."""
        newest = rec
        for d in sorted(rec.daemons() - {self.cfg.id}):
            with contextlib.suppress(RuntimeFailure, KeyError):
                other = InstanceRecord.from_dict(self.client.call(
                    d, "instances/get", {"flow": rec.flow, "instance": rec.instance}, timeout=2.0)["record"])
                if other.revision > newest.revision:
                    newest = other
        return newest

    def _resume(self) -> None:
        """Pick up persisted instances, preferring a newer copy held by another daemon."""
        for rec in self.store.load_all():
            newest = self._newest(rec)
            newest.adopt_events(rec)
            self.records[rec.key] = newest
            self.store.save(newest)
            if newest.state != "stopped":
                mine = newest.nodes_on(self.cfg.id)
                self.log(f"resuming {newest.key}: {', '.join(mine) or '(no nodes here)'}")
                try:
                    self._run(newest, mine, wait_start=newest.state == "loaded")
                except (UserError, RuntimeFailure) as exc:
                    self.log(f"cannot resume {newest.key}: {exc}")

    def _reconcile(self) -> None:
        """After a partition heals: adopt newer records (nodes moved away while we were cut off stop)."""
        self._reconcile_pending.clear()
        with self._lock:
            records = list(self.records.values())
        for rec in records:
            newest = self._newest(rec)
            if newest.revision > rec.revision:
                self.log(f"{rec.key}: adopting revision {newest.revision} from a peer")
                self.update_instance({"record": newest.to_dict()})

    def _connected(self) -> bool:
        """A client daemon cut off from its router must not act on the others' disappearance."""
        if self.opts.mode != "client":
            return True
        return bool(self.session.info.routers_zid())

    def _on_daemon_token(self, sample: Any) -> None:
        other = str(sample.key_expr).rsplit("/", 1)[-1]
        if other == self.cfg.id:
            return
        if sample.kind == zenoh.SampleKind.DELETE:
            self.log(f"daemon {other} is gone")
            self._pool.submit(self._on_daemon_lost, other)
        elif self.ready.is_set() and not self._reconcile_pending.is_set():
            self._reconcile_pending.set()
            self._pool.submit(self._reconcile)

    def _on_daemon_lost(self, lost: str) -> None:
        from zflow.daemon.deploy import replace_lost_nodes

        time.sleep(0.2)
        if not self._connected():
            self.log(f"daemon {lost} gone while this daemon has no router: not re-placing")
            return
        alive = set(self.client.alive())
        for _ in range(10):  # a liveliness query that timed out under load says nothing: ask again
            if self.cfg.id in alive or not self._connected():
                break
            time.sleep(0.3)
            alive = set(self.client.alive())
        if lost in alive or self.cfg.id not in alive:
            self.log(f"daemon {lost}'s token went away but the alive set is {sorted(alive)}: not acting")
            return
        with self._lock:
            affected = [r for r in self.records.values() if lost in r.daemons() and r.state != "stopped"]
        for rec in affected:
            survivors = sorted(((rec.daemons() - {lost}) & alive) | {self.cfg.id})
            if survivors[0] != self.cfg.id:
                continue  # the lowest-id survivor leads; it will send us the new record
            self.log(f"daemon {lost} lost: {rec.key} had {', '.join(rec.nodes_on(lost))} there")
            try:
                replace_lost_nodes(self.session, rec, lost, alive, secret=self.secret, local=self)
            except Exception as exc:
                self.log(f"re-placing {rec.key} failed: {exc}")


def run_daemon(identity: Identity, echo: bool = True, secret_file: str | None = None,
               ready_file: str | None = None) -> int:
    """The daemon's main loop until SIGTERM/SIGINT."""
    import signal

    from zflow.daemon.auth import load_secret
    stop = StopSignal().install((signal.SIGTERM, signal.SIGINT))
    with Daemon(identity, echo=echo, secret=load_secret(secret_file)) as daemon:
        if ready_file:
            with open(ready_file, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        daemon.serve_forever(stop)
    return 0
