"""``zflow daemon run``: the long-running host on each device.

It joins Zenoh (client, peer, or as the router itself), declares its liveliness token and
answers control queries under ``zflow/ctl/daemon/<id>/...``:

- ``status``: identity, load, free capacity per pool, running nodes, a bootstrap token claim
  (fingerprint and nonce proof, never the token: transport/auth.py);
- ``instances/{list,get,load,start,stop,delete,update,state}``: its share of instances (load
  and update only for records a trusted deployer signed: signing.py);
- ``logs``: recent lines from itself and its node hosts.

The parts, each in its own module: the control server (``control_server.py``: the queries
above, typed by ``transport/control.py``, and the bundles this daemon has cached), the instance
manager (``instances.py``: node hosts in line with the records), every daemon's replica of the
instance records (``replica.py``), failover (``failover.py``: re-placing a lost daemon's nodes)
and pool accounting (``pools.py``). This class holds them together: the session, the life
cycle, the logs and the node hosts' processes.
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

from zflow import keyexprs, settings
from zflow.daemon.bundles import BundleCache
from zflow.daemon.control_server import ControlServer
from zflow.daemon.failover import Failover
from zflow.daemon.identity import Identity
from zflow.daemon.instances import InstanceManager
from zflow.daemon.pools import PoolAccounting
from zflow.daemon.replica import Replica
from zflow.daemon.signing import Verifier
from zflow.daemon.state import InstanceRecord, RecordStore
from zflow.errors import RuntimeFailure, UserError
from zflow.process import StopSignal
from zflow.scheduler.model import Pool
from zflow.transport import control as ctl
from zflow.transport.control_client import ControlClient
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
    session: zenoh.Session  # opened by __enter__
    def __init__(self, cfg: Identity | Any, echo: bool = True, secret: bytes | None = None):
        self.cfg: Identity = cfg.resolve() if hasattr(cfg, "resolve") else cfg
        self.echo = echo
        self.secret = secret
        self.started = time.time()
        self.logs: collections.deque[str] = collections.deque(maxlen=2000)
        self.manager = InstanceManager(self)
        self.failover = Failover(self)
        self.pools = PoolAccounting(self.cfg, lambda: self.records)
        self._stack = contextlib.ExitStack()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zflow-daemon")
        self._local_endpoint: str | None = None
        self.ready = threading.Event()

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
        # node hosts listen nowhere, whatever the file says; they lose the router when this
        # daemon does (the same lease), so they pause before its nodes are re-placed (fence.py)
        quiet: dict[str, Any] = {"listen/endpoints": [], "transport/link/tx/lease": z.lease_ms}
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
        self.verifier, trust = Verifier.for_daemon(self.cfg.trusted_deployers)
        self.log(trust)
        self.bundles = BundleCache(os.path.join(data, "bundles"))
        self.supervisor = self._stack.enter_context(Supervisor(log=self._child_log, on_final=self._on_child_final))
        self.opts = self.session_options()
        self.session = self._stack.enter_context(open_session(self.opts))
        self.client = ControlClient(self.session)
        self._check_unique_id()
        self.replica = Replica(self.cfg.id, self.session, RecordStore(data), self.manager.fence, self.submit)
        persisted = dict(self.replica.records)
        self.replica.start()
        self._stack.callback(self.replica.close)
        self.control = ControlServer(self)
        self._stack.callback(self.control.close)
        if self.cfg.scheduler:
            from zflow.scheduler.service import SchedulerService

            svc = SchedulerService(self.session, self.secret)
            self._stack.callback(svc.close)
        self.replica.sync()  # the current generation of everything, before resuming anything
        self.manager.resume(persisted)
        token = self.session.liveliness().declare_token(keyexprs.daemon_alive(self.cfg.id))
        self._stack.callback(token.undeclare)
        deadline = time.monotonic() + 3.0  # ready means visible to the others, not just declared
        while self.cfg.id not in self.client.alive(timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.02)
        # history=True: tokens declared before this subscriber must also report their removal
        watch = self.session.liveliness().declare_subscriber(keyexprs.daemon_alive("*"),
                                                             self.failover.on_daemon_token, history=True)
        self._stack.callback(watch.undeclare)
        self._stack.callback(self.manager.stop_all)
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
        said = self.manager.record_failure(name, code, restarts, self._child_lines(name))
        if said:
            self.log(said)

    def submit(self, fn: Any, *args: Any) -> None:
        """Work handed over from Zenoh's threads (which must stay short)."""
        with contextlib.suppress(RuntimeError):  # shutting down
            self._pool.submit(fn, *args)

    @property
    def records(self) -> dict[str, InstanceRecord]:
        """Every instance this daemon knows (its replica, tombstones left out)."""
        replica = getattr(self, "replica", None)
        return replica.live() if replica is not None else {}

    # -- status (also what ``status`` answers) ---------------------------------------------------
    def free_pools(self) -> list[Pool]:
        return self.pools.free()

    def status(self, nonce: str | None = None) -> dict[str, Any]:
        return self.control.status(ctl.StatusRequest(nonce=nonce)).to_wire()

    # -- node hosts (for the instance manager) -----------------------------------------------------
    def fetch_bundles(self, rec: InstanceRecord, every_node: bool = False) -> None:
        """Fetch (and install) this daemon's bundles before taking a lock: status stays responsive.
        ``every_node`` (in the background after a load): also the other daemons' bundles, so the
        code of a daemon that dies is still served by the others when its nodes are re-placed."""
        self._authorize(rec)
        nodes = rec.graph.get("nodes", {})
        for nid in sorted(nodes) if every_node else rec.nodes_on(self.cfg.id):
            bundle = nodes[nid].get("deploy", {}).get("bundle")
            if bundle:
                try:
                    self.bundles.ensure(self.session, bundle["digest"])
                except RuntimeFailure as exc:
                    if not every_node:
                        raise
                    self.log(f"{rec.key}: no copy of node {nid}'s bundle kept here: {exc}")

    def _authorize(self, rec: InstanceRecord) -> None:
        """Only what a trusted deployer signed runs here (signing.py). Checked at the two doors
        every record passes, whoever sent it: before its bundles are fetched (load, update: so
        before anything is written) and before any of its nodes starts (``_run``)."""
        self.verifier.check(rec.flow, rec.instance, rec.graph, rec.signature)

    def start_nodes(self, rec: InstanceRecord, nodes: list[str], wait_start: bool) -> Any:
        """Start host processes for ``nodes`` of an instance; returns their runner."""
        from zflow.daemon.identity import DAEMON_ENV, SITE_ENV
        from zflow.daemon.runner import DaemonRunner, localize
        from zflow.dataflow.graph import Graph
        from zflow.runtime.fence import Fence

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
            env[settings.CONNECT] = ",".join(opts.connect)
        fence = Fence(self.cfg.id, rec.created, rec.generation).to_dict()
        runner = DaemonRunner(graph, opts, node_ids=nodes, wait_start=wait_start,
                              supervisor=self.supervisor, pythons=pythons, env=env, fence=fence)
        runner.start()
        return runner


def run_daemon(identity: Identity, echo: bool = True, secret_file: str | None = None,
               ready_file: str | None = None) -> int:
    """The daemon's main loop until SIGTERM/SIGINT."""
    import signal

    from zflow.transport.auth import load_secret
    stop = StopSignal().install((signal.SIGTERM, signal.SIGINT))
    with Daemon(identity, echo=echo, secret=load_secret(secret_file)) as daemon:
        if ready_file:
            with open(ready_file, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        daemon.serve_forever(stop)
    return 0
