"""Fault scenarios: a flow carrying sequence-numbered messages over one kind of link, a fault
injected while it runs, and a verdict per link. The CI suite (tests/test_fault_suite.py) runs
each once; ``benchmarks/soak.py`` runs them in a loop for as long as asked.

Each scenario is a function ``(ctx: Run) -> None`` that adds its link reports to ``ctx``;
:func:`run` wraps it: it marks every process spawned (see :mod:`faultlib.inject`), and after the
scenario lists the orphans (then kills them so the next scenario starts clean).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime_helpers import graph, node

from faultlib.check import LinkReport, judge, judge_sink
from faultlib.inject import Faults, last_pid, marked, orphans, reap
from zflow.dataflow.graph import Graph, QoS, RestartPolicy

NODES = str(Path(__file__).resolve().parent / "nodes.py")


@dataclass
class Run:
    """One scenario's working directory, fault counter and findings."""

    dir: Path
    faults: Faults = field(default_factory=Faults)
    reports: list[LinkReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    orphans: list[tuple[int, str]] = field(default_factory=list)
    scale: float = 1.0  # >1 in the soak: more messages, longer faults
    mark: str = ""  # the ZFLOW_FAULT_RUN token every process of this run carries

    @property
    def checked(self) -> int:
        return sum(r.received for r in self.reports)

    def problems(self) -> list[str]:
        out = [f"{r.link}: {p}" for r in self.reports for p in r.problems()]
        out += [f"orphan process {pid}: {cmd[:160]}" for pid, cmd in self.orphans]
        return out


def run(scenario: Callable[[Run], None], directory: Path, scale: float = 1.0, grace: float = 10.0) -> Run:
    """Run one scenario in ``directory``; what still runs ``grace`` seconds after it is listed
    in the result as orphans, then killed. A scenario that raises is reported in ``notes``."""
    directory.mkdir(parents=True, exist_ok=True)
    ctx = Run(directory, scale=scale)
    with marked() as token:
        ctx.mark = token
        try:
            scenario(ctx)
        except NetnsUnavailable:
            raise
        except Exception as exc:  # a scenario that broke half-way is a finding, orphans included
            import traceback

            ctx.notes.append(f"the scenario broke: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}")
        finally:
            ctx.faults.join()
            ctx.orphans = orphans(token, grace)
            reap(token)
    return ctx


# -- flows ----------------------------------------------------------------------------------------
def seq_flow(ctx: Run, flow: str, *, n: int, rate: float = 0, size: int = 0, relay: bool = True,
             group: str | None = None, qos: QoS | None = None, sink_cfg: dict[str, Any] | None = None,
             relay_restart: RestartPolicy | None = None, sink_restart: RestartPolicy | None = None,
             directory: Path | None = None) -> Graph:
    """src (SeqSource) [-> relay] -> sink (CheckSink), ``qos`` on the sink's input; the nodes
    keep their files in ``directory`` (default: the run's)."""
    d = {"dir": str(directory or ctx.dir)}
    nodes = [node("src", "source", NODES, attr="SeqSource", outputs=["out"], group=group,
                  config={**d, "n": n, "rate": rate, "size": size})]
    links = []
    if relay:
        nodes.append(node("relay", "operator", NODES, attr="Relay", inputs=["in"], outputs=["out"],
                          group=group, config=d, restart=relay_restart))
        links.append(("src", "out", "relay", "in"))
    nodes.append(node("sink", "sink", NODES, attr="CheckSink", inputs=["in"], group=group,
                      config={**d, **(sink_cfg or {})}, restart=sink_restart))
    links.append(("relay" if relay else "src", "out", "sink", "in"))
    q = {("sink", "in"): qos} if qos else {}
    if relay and qos:
        q[("relay", "in")] = replace(qos, policy="block")
    return graph(flow, nodes, links, qos=q)


@contextlib.contextmanager
def flow_running(ctx: Run, g: Graph, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """``run_flow`` on a thread, its hosts' output in ``<dir>/<flow>.log``; yields a dict that
    holds ``result`` once the flow has ended."""
    from zflow.runtime.local_run import run_flow

    box: dict[str, Any] = {"stop": threading.Event()}
    lock = threading.Lock()
    log_file = open(ctx.dir / f"{g.flow}.log", "a")  # noqa: SIM115 (closed after the flow)

    def log(name: str, line: str) -> None:
        with lock:
            if not log_file.closed:  # a pump thread may outlive the flow by a line
                log_file.write(f"[{name}] {line}\n")
                log_file.flush()

    def target() -> None:
        try:
            box["result"] = run_flow(g, log=log, stop=box["stop"], **kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"flow:{g.flow}", daemon=True)
    thread.start()
    box["thread"] = thread
    try:
        yield box
    finally:
        box["stop"].set()
        thread.join(60)
        with lock:
            log_file.close()


def wait_flow(box: dict[str, Any], timeout: float) -> Any:
    """The flow's RunResult, or None if it has not ended within ``timeout`` (it is then stopped)."""
    box["thread"].join(timeout)
    if box["thread"].is_alive():
        box["stop"].set()
        box["thread"].join(30)
        return None
    if "error" in box:
        raise box["error"]
    return box["result"]


def wait_records(ctx: Run, sink: str, count: int, timeout: float = 30.0, port: str = "in",
                 directory: Path | None = None) -> bool:
    """Whether the sink recorded ``count`` messages within ``timeout``."""
    from daemon_helpers import wait_until

    return wait_until(lambda: _lines(directory or ctx, sink, port) >= count, timeout)


def _ended(ctx: Run, result: Any, timeout: float) -> None:
    if result is None:
        ctx.notes.append(f"the flow did not end within {timeout:.0f}s of its last message")
    elif result.exit_code != 0:
        ctx.notes.append(f"the flow exited {result.exit_code}: {result.failed}")


# -- scenarios ------------------------------------------------------------------------------------
def inprocess_stall(ctx: Run) -> None:
    """In-process links (one host for all nodes): the sink stalls in its handler, then the
    whole host is SIGSTOPped; ``block`` must lose nothing."""
    n = int(3000 * ctx.scale)
    g = seq_flow(ctx, "fin", n=n, rate=1000, group="all", sink_cfg={"stall_at": n // 2, "stall_s": 1.0})
    with flow_running(ctx, g) as box:
        assert wait_records(ctx, "sink", n // 4)
        ctx.faults.stall(last_pid(ctx.dir, "sink"), 1.0)
        result = wait_flow(box, 30)
    _ended(ctx, result, 30)
    ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link="in-process src->relay->sink"))


def zenoh_stalled_consumer(ctx: Run) -> None:
    """Zenoh link, queue 8, ``block``: the sink stalls in its handler on its first message for
    longer than the Zenoh lease (observation 1; the router's lease is cut to 2 s so that a 4 s
    stall shows what a 12 s one does with the default 10 s). ``block`` must lose nothing and the
    flow must end."""
    n = int(500 * ctx.scale)
    g = seq_flow(ctx, "fstall", n=n, relay=False, qos=QoS(queue_size=8), sink_cfg={"stall_at": 0, "stall_s": 4.0})
    with flow_running(ctx, g, router_config=short_lease(ctx)) as box:
        ctx.faults.note("stall")
        result = wait_flow(box, 8)
    _ended(ctx, result, 8)
    ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link="zenoh src->sink (handler stall)"))


def short_lease(ctx: Run, lease_ms: int = 2000) -> str:
    """A config for the embedded router with a short Zenoh lease (default 10 s)."""
    path = ctx.dir / "router.json5"
    path.write_text(f"{{transport: {{link: {{tx: {{lease: {lease_ms}, keep_alive: 4}}}}}}}}\n")
    return str(path)


def zenoh_sigstop(ctx: Run) -> None:
    """Zenoh links, ``block``: the relay's and then the sink's host are SIGSTOPped (Zenoh
    threads included) for 2 s each while the source runs flat out."""
    n = int(20000 * ctx.scale)
    g = seq_flow(ctx, "fstop", n=n, rate=4000, qos=QoS(queue_size=16))
    with flow_running(ctx, g) as box:
        assert wait_records(ctx, "sink", 1000)
        ctx.faults.stall(last_pid(ctx.dir, "relay"), 2.0)
        ctx.faults.stall(last_pid(ctx.dir, "sink"), 2.0)
        result = wait_flow(box, 60)
    _ended(ctx, result, 60)
    ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link="zenoh src->relay->sink (SIGSTOP)"))


def drop_policy(policy: str) -> Callable[[Run], None]:
    """A slow sink behind a ``policy`` link of 4: it drops, and the count it reports must
    equal what never arrived (observation 3)."""

    def scenario(ctx: Run) -> None:
        n = int(3000 * ctx.scale)
        g = seq_flow(ctx, f"fdrop{policy[0]}", n=n, relay=False,
                     qos=QoS(queue_size=4, policy=policy),  # type: ignore[arg-type]
                     sink_cfg={"delay": 0.002})
        with flow_running(ctx, g) as box:
            result = wait_flow(box, 60)
        _ended(ctx, result, 60)
        ctx.reports.append(judge_sink(ctx.dir, "src", "sink", policy=policy, link=f"zenoh src->sink ({policy})"))

    scenario.__name__ = f"drop_{policy}"
    return scenario


def node_killed(victim: str) -> Callable[[Run], None]:
    """The ``victim``'s host (``relay`` or ``sink``) is SIGKILLed and restarted by its policy:
    nothing lost, nothing reordered, the flow runs to its end; the one message being handled
    at the kill may come once more, right after itself (docs/dataflow.md, ``block``)."""

    def scenario(ctx: Run) -> None:
        n = int(3000 * ctx.scale)
        flow = f"fkill{victim}"
        restart = RestartPolicy("on-failure", max_restarts=5, backoff_s=0.1)
        g = seq_flow(ctx, flow, n=n, rate=1000, relay=victim == "relay", qos=QoS(queue_size=16),
                     **{f"{victim}_restart": restart})
        with flow_running(ctx, g) as box:
            assert wait_records(ctx, "sink", n // 4)
            ctx.faults.kill(last_pid(ctx.dir, victim))
            result = wait_flow(box, 60)
        _ended(ctx, result, 60)
        path = "src->relay->sink" if victim == "relay" else "src->sink"
        ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link=f"zenoh {path} ({victim} SIGKILL)",
                                      crashes=ctx.faults.count["kill"]))
        restarts = None if result is None else result.status.get(f"{flow}/{victim}", {}).get("restarts")
        if result is not None and restarts != 1:
            ctx.notes.append(f"{victim} restarted {restarts} time(s), not once")

    scenario.__name__ = f"{victim}_killed"
    return scenario




def sink_killed_in_handler(ctx: Run) -> None:
    """The sink's host is SIGKILLed in the middle of its handler (stalled on a message it has
    already recorded) while the producer, out of credit, holds many more: the restarted sink
    gets that message again (the one documented repeat) and then everything else, in order."""
    n = int(2000 * ctx.scale)
    at = n // 4
    restart = RestartPolicy("on-failure", max_restarts=5, backoff_s=0.1)
    g = seq_flow(ctx, "fkillhandler", n=n, relay=False, qos=QoS(queue_size=16), sink_restart=restart,
                 sink_cfg={"stall_at": at, "stall_s": 2.0})
    with flow_running(ctx, g) as box:
        assert wait_records(ctx, "sink", at + 1)
        time.sleep(0.5)  # deep in the stall: the producer is held
        ctx.faults.kill(last_pid(ctx.dir, "sink"))
        result = wait_flow(box, 60)
    _ended(ctx, result, 60)
    rep = judge_sink(ctx.dir, "src", "sink", link="zenoh src->sink (sink SIGKILL in its handler)",
                     crashes=ctx.faults.count["kill"])
    ctx.reports.append(rep)
    if rep.duplicates != 1:  # the message in hand was recorded, not finished: it must come again
        ctx.notes.append(f"the message in the killed handler came {rep.duplicates + 1} time(s), not twice")


def bridge(ctx: Run) -> None:
    """Bridge in and out (observation 2): a ``zenoh-subscribers`` source straight into a
    ``zenoh-publishers`` sink, default QoS, fed flat out by a ``block`` publisher of 1 KiB
    messages outside the flow and read by a plain subscriber outside it (its own session, a
    bounded channel) that stalls twice for 2 s on the way: back-pressure must reach the
    publisher and every message come out once, in order."""
    import zenoh

    from zflow import codec
    from zflow.dataflow import compile_dict
    from zflow.transport.session import EmbeddedRouter, open_session

    n = int(20000 * ctx.scale)
    tag = ctx.dir.name.replace(".", "-")
    key_in, key_out = f"zflow-faults/{tag}/in", f"zflow-faults/{tag}/out"
    g = compile_dict({"name": "fbridge",
                      "sources": [{"id": "sub", "zenoh-subscribers": {"out": key_in}}],
                      "sinks": [{"id": "pub", "zenoh-publishers": {"in": key_out}}],
                      "links": [{"from": {"node": "sub", "output": "out"}, "to": {"node": "pub", "input": "in"}}]},
                     str(ctx.dir))
    record: list[tuple[str, int]] = []
    epoch = "bridge"
    with EmbeddedRouter() as router, open_session(router.client_options()) as writer, \
            open_session(router.client_options()) as reader:
        sub = reader.declare_subscriber(key_out, zenoh.handlers.FifoChannel(256))

        def read() -> None:
            while len(record) < n:
                try:
                    sample = sub.recv()
                except zenoh.ZError:
                    return
                value = codec.decode(sample.payload.to_bytes(), str(sample.encoding))
                record.append((value["epoch"], value["seq"]))
                if value["seq"] in (n // 10, n // 2):
                    ctx.faults.note("stall")
                    time.sleep(2.0 * ctx.scale)

        reading = threading.Thread(target=read, daemon=True)
        reading.start()
        with flow_running(ctx, g, connect=[router.endpoint]) as box:
            deadline = time.monotonic() + 30
            while len(_host_pids(ctx)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            pub = writer.declare_publisher(key_in, congestion_control=zenoh.CongestionControl.BLOCK,
                                           reliability=zenoh.Reliability.RELIABLE)
            time.sleep(1.0)  # the hosts declare their subscribers before they say they are ready
            pad = b"x" * 1024
            for seq in range(n):
                payload, ctype = codec.encode({"epoch": epoch, "seq": seq, "pad": pad})
                pub.put(payload, encoding=ctype)
            _until_quiet(lambda: len(record), reading, quiet=2.0, limit=30.0)
            box["stop"].set()
            wait_flow(box, 30)
        pub.undeclare()
    ctx.reports.append(judge("zenoh in -> bridge -> zenoh out", list(record), (epoch, n - 1)))


def settled_sent(directory: Path, source: str = "src", settle: float = 1.0) -> tuple[str, int] | None:
    """What an endless source had noted as sent, read ``settle`` seconds before its flow is
    stopped: everything up to it must have arrived (later messages may be in flight at the stop)."""
    from faultlib.check import read_sent

    sent = read_sent(directory / f"{source}.sent")
    time.sleep(settle)
    return sent


def _until_quiet(count: Callable[[], int], thread: threading.Thread, quiet: float, limit: float) -> None:
    """Wait for ``thread`` to end, or for ``count()`` to stay the same for ``quiet`` seconds
    (what is late arrives, what is lost does not), at most ``limit`` seconds."""
    end = time.monotonic() + limit
    last, since = count(), time.monotonic()
    while thread.is_alive() and time.monotonic() < end:
        thread.join(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def _host_pids(ctx: Run) -> list[int]:
    """Node-host processes of this scenario (found by their mark: not every node writes a pid file)."""
    from faultlib.inject import marked_processes

    return sorted(pid for pid, cmd in marked_processes(ctx.mark) if "zflow.runtime.node_host" in cmd)


def _deploy(g: Graph, hints: dict[str, dict[str, Any]]) -> Graph:
    return replace(g, nodes={nid: replace(spec, deploy=hints[nid]) if nid in hints else spec
                             for nid, spec in g.nodes.items()})


def daemon_killed(ctx: Run) -> None:
    """Across daemons (observation 5): two instances on daemons d1 and d2, each a source on d1;
    ``across`` has its sink on d2, ``all`` has every node on d1. d1 is SIGKILLed, then
    restarted. Its nodes must be re-placed on d2 (a source in a new epoch: it says it
    restarted), each sink must keep receiving, each instance must say "running", and the
    returning d1 must never resume a stale node (no message from an older epoch after a newer one)."""
    from daemon_helpers import DaemonProcess, daemon_processes, wait_until

    from zflow.daemon.instance_deploy import create_instance, delete_instance, find_instance
    from zflow.errors import UserError
    from zflow.transport.session import EmbeddedRouter, open_session

    sinks = {"across": ["d2"], "all": ["d1", "d2"]}
    dirs = {name: ctx.dir / name for name in sinks}
    specs = [("d1", ctx.dir / "d1"), ("d2", ctx.dir / "d2")]
    with EmbeddedRouter() as router, open_session(router.client_options()) as s, \
            daemon_processes(specs, [router.endpoint]) as procs:
        for name, sink_on in sinks.items():
            dirs[name].mkdir()
            g = _deploy(seq_flow(ctx, "fdaemon", n=0, rate=200, relay=False, directory=dirs[name]),
                        {"src": {"daemons": ["d1", "d2"]}, "sink": {"daemons": sink_on}})
            rec = create_instance(s, g, instance=name)
            if rec.placement["src"].split("/")[0] != "d1" or rec.placement["sink"].split("/")[0] != sink_on[0]:
                raise AssertionError(f"instance {name} was not placed as planned: {rec.placement}")
        assert all(wait_records(ctx, "sink", 100, directory=d) for d in dirs.values())
        ctx.faults.kill(procs[0].proc.pid, "daemon-kill")
        procs[0].kill()  # reaps it and any host it left
        before = {name: _lines(d, "sink") for name, d in dirs.items()}
        wait_until(lambda: all(_lines(d, "sink") >= before[n] + 100 for n, d in dirs.items()), 8)
        for name, d in dirs.items():
            if _lines(d, "sink") < before[name] + 100:
                ctx.notes.append(f"{name}: no data reached the sink after d1 was killed")
            try:
                found, states, _ = find_instance(s, name)
            except UserError as exc:
                ctx.notes.append(f"{name}: {exc}")
                continue
            if found.state != "running" or states != {"src": "running", "sink": "running"}:
                ctx.notes.append(f"{name}: after the kill the instance says {found.state}, nodes {states}")
        back = DaemonProcess("d1", ctx.dir / "d1", [router.endpoint])
        procs.append(back)
        back.wait_ready()
        ctx.faults.note("daemon-restart")
        before = {name: _lines(d, "sink") for name, d in dirs.items()}
        wait_until(lambda: all(_lines(d, "sink") >= before[n] + 200 for n, d in dirs.items()), 4)
        sent = {name: settled_sent(d) for name, d in dirs.items()}
        for name in sinks:
            with contextlib.suppress(UserError):
                delete_instance(s, name)
    for name, d in dirs.items():
        where = "d1 src -> d2 sink" if name == "across" else "d1 src -> d1 sink (all nodes on the victim)"
        ctx.reports.append(judge_sink(d, "src", "sink", link=f"daemons {where}", sent=sent[name]))


NETNS_FLOW = """\
name: fnet
sources:
  - id: src
    operator: {nodes}:SeqSource
    outputs: [out]
    configuration: {{dir: "{dir}", n: {n}, rate: {rate}}}
    deploy: {{daemons: [edge-a, edge-b]}}
sinks:
  - id: sink
    operator: {nodes}:CheckSink
    inputs: {{in: src/out}}
    configuration: {{dir: "{dir}"}}
    deploy: {{daemon: edge-b}}
"""


@contextlib.contextmanager
def netns_instance(ctx: Run, n: int = 0, rate: int = 200) -> Iterator[Any]:
    """Namespaces r (router daemon with the scheduler), a and b (edge daemons) from
    tests/test_netns_multihost.py, and instance ``p1`` of a SeqSource on edge-a feeding a
    CheckSink on edge-b; yields the site once the sink has data. Deleted and torn down after."""
    import json

    from daemon_helpers import wait_until
    from test_netns_multihost import Site, _netns_usable

    why = _netns_usable()
    if why:
        raise NetnsUnavailable(why)
    site = Site(ctx.dir)
    try:
        site.setup()
        flow = ctx.dir / "flow.yaml"
        flow.write_text(NETNS_FLOW.format(nodes=NODES, dir=ctx.dir, n=n, rate=rate))
        readies = [site.spawn("r", "router", "daemon", "run", "--router", "--listen", "tcp/0.0.0.0:7447",
                              "--id", "site", "--scheduler", "--data-dir", str(ctx.dir / "site"))]
        assert wait_until(readies[0].exists, 20), site.dump_logs()
        for host in ("a", "b"):
            readies.append(site.spawn(host, f"edge-{host}", "daemon", "run", "--id", f"edge-{host}",
                                      "--data-dir", str(ctx.dir / host),
                                      "--connect", f"tcp/{site.router_ip(host)}:7447"))
        assert wait_until(lambda: all(r.exists() for r in readies), 30), site.dump_logs()
        assert wait_until(lambda: "edge-b" in site.zflow("daemon", "list").stdout, 10)
        site.zflow("instance", "create", str(flow), "--id", "p1")
        status = json.loads(site.zflow("instance", "status", "p1", "--json").stdout)
        if not status["record"]["placement"]["src"].startswith("edge-a/"):
            raise AssertionError(f"expected the source on edge-a: {status['record']['placement']}")
        assert wait_records(ctx, "sink", 100), site.dump_logs()
        yield site
        site.zflow("instance", "delete", "p1", check=False)
    finally:
        site.teardown()


def placement(site: Any, node: str) -> str:
    import json

    return str(json.loads(site.zflow("instance", "status", "p1", "--json").stdout)["record"]["placement"][node])


def netns_partition(ctx: Run) -> None:
    """Across daemons in network namespaces: the source's host (edge-a) is cut off from the
    router for longer than the daemons' lease, then comes back. The source must be re-placed on
    edge-b (a new epoch), the sink on edge-b must keep receiving, and once the link is back the
    stale source on edge-a must never reach the sink (fencing)."""
    from daemon_helpers import wait_until

    with netns_instance(ctx) as site:
        # the lease (3 s) and the leader's double check must both be over before the link comes
        # back, also under load: a cut that heals first is no failover (see docs/daemons.md)
        ctx.faults.partition(site.ns["r"], f"{site.prefix}ra", 8.0 * ctx.scale)
        n = _lines(ctx, "sink")
        if not wait_until(lambda: _lines(ctx, "sink") >= n + 200, 6):
            ctx.notes.append("no data reached the sink after the partition healed")
        if not placement(site, "src").startswith("edge-b/"):
            ctx.notes.append(f"the source was not re-placed: it is on {placement(site, 'src')}")
        sent = settled_sent(ctx.dir)
    ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link="netns edge-a src -> edge-b sink (partition)",
                                  sent=sent))


def netns_stall(ctx: Run) -> None:
    """Across daemons in network namespaces, a finite flow: the sink's host on edge-b and
    then the source's host on edge-a are SIGSTOPped for 2 s each (shorter than the lease).
    ``block`` must deliver every message once, in order, and the flow must end."""
    from daemon_helpers import wait_until

    n = int(2000 * ctx.scale)
    with netns_instance(ctx, n=n, rate=400):
        ctx.faults.stall(last_pid(ctx.dir, "sink"), 2.0)
        ctx.faults.stall(last_pid(ctx.dir, "src"), 2.0)
        if not wait_until(lambda: (ctx.dir / "sink.stats.json").exists(), 20):
            ctx.notes.append("the sink never saw the end of its stream")
    ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link="netns edge-a src -> edge-b sink (stalls)"))


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``)."""


def _lines(where: Run | Path, sink: str, port: str = "in") -> int:
    path = (where.dir if isinstance(where, Run) else where) / f"{sink}.{port}.seq"
    return len(path.read_bytes().splitlines()) if path.exists() else 0



WORKFLOWS = Path(__file__).resolve().parent.parent / "workflow_data"


def workflow_steps(ctx: Run) -> None:
    """Workflow steps (a Ryax trigger and three warm steps, each in its own host): every
    step host is SIGSTOPped for 1.5 s while runs flow. Each run (numbered by the trigger's
    index) must complete exactly once, in order, with the right result."""
    from zflow.workflows.workflow import load_workflow
    from zflow.workflows.workflow_runner import WorkflowRunner

    n = int(150 * ctx.scale)
    wf = load_workflow(WORKFLOWS / "three-steps.yaml")
    with WorkflowRunner(wf, ctx.dir / "state", max_runs=n) as runner:
        deadline = time.monotonic() + 20
        while len(runner.finished) < n // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in _host_pids(ctx):
            ctx.faults.stall(pid, 1.5, wait=False)
        ctx.faults.join()
        try:
            records = runner.wait(runs=n, timeout=30)
        except Exception as exc:
            ctx.notes.append(f"workflow: {exc}")
            records = [runner.records[r] for r in runner.finished]
    seen = []
    for rec in records:
        index = rec.get("outputs", {}).get("tick.index")
        if rec["status"] != "Completed" or rec.get("results", {}).get("total") != 2 * index + 11:
            ctx.notes.append(f"run {index}: {rec['status']} {rec.get('results')} {rec.get('error')}")
        seen.append(("wf", int(index)))
    ctx.reports.append(judge("workflow tick -> a -> b -> c (runs)", seen, ("wf", n - 1)))



def workflow_runner_killed(ctx: Run) -> None:
    """``zflow workflow run`` is SIGKILLed while a run is in its 5 s step (observation 6): once
    the runner's liveliness is gone, every run it left must end (``Error`` with the reason),
    never stay ``Running``."""
    import json
    import signal
    import subprocess
    import sys

    from daemon_helpers import env, wait_until

    state = ctx.dir / "state"

    def records() -> list[dict[str, Any]]:
        proc = subprocess.run([sys.executable, "-m", "zflow", "workflow", "runs", "--state-dir", str(state),
                               "--json"], env=env(), capture_output=True, text=True, timeout=30)
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []

    runner = subprocess.Popen([sys.executable, "-m", "zflow", "workflow", "run", str(WORKFLOWS / "slow.yaml"),
                               "--state-dir", str(state)], env=env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_until(lambda: any(r["status"] == "Running" for r in records()), 20, interval=0.3):
            ctx.notes.append("no run was seen Running before the kill")
        ctx.faults.kill(runner.pid, "runner-kill")
        runner.wait(10)
        wait_until(lambda: all(r["status"] != "Running" for r in records()), 5, interval=0.5)
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGKILL)
            runner.wait(10)
    found = records()
    for rec in found:
        if rec["status"] == "Running":
            ctx.notes.append(f"run {rec['run']} is still Running after its runner was killed")
        elif rec["status"] == "Error" and not rec.get("error"):
            ctx.notes.append(f"run {rec['run']} is Error without a reason")
    ended = [("wf", i) for i, rec in enumerate(found) if rec["status"] != "Running"]
    ctx.reports.append(judge("workflow runner SIGKILL (runs end)", ended, ("wf", len(found) - 1) if found else None))



def source_terminated(ctx: Run) -> None:
    """A source's host gets SIGTERM (what a daemon's death sends it through the parent-death
    signal, and what a daemon sends a node it hands over): the source is stopped, not finished,
    so its consumer must not be told the stream ended (it would exit, and the flow would report
    success)."""
    import signal

    from daemon_helpers import wait_until

    g = seq_flow(ctx, "fterm", n=0, rate=200, relay=False)
    with flow_running(ctx, g) as box:
        assert wait_records(ctx, "sink", 50)
        pid = last_pid(ctx.dir, "src")
        os.kill(pid, signal.SIGTERM)
        ctx.faults.note("sigterm")
        if wait_until(lambda: (ctx.dir / "sink.stats.json").exists(), 2.0):
            ctx.notes.append("the sink took the stopped source's exit as the end of its stream")
        box["stop"].set()
        result = wait_flow(box, 20)
    if result is not None and result.status.get("fterm/src", {}).get("state") == "exited":
        ctx.notes.append("the SIGTERMed source is reported as exited (finished) with code 0")
    ctx.reports.append(judge_sink(ctx.dir, "src", "sink", link="zenoh src->sink (source SIGTERM)"))


# Every scenario by name: the CI suite runs each once, the soak in a loop.
ALL: dict[str, Callable[[Run], None]] = {
    "inprocess-stall": inprocess_stall,
    "zenoh-sigstop": zenoh_sigstop,
    "zenoh-stall-beyond-lease": zenoh_stalled_consumer,
    "drop-oldest": drop_policy("drop_oldest"),
    "latest": drop_policy("latest"),
    "bridge-in-out": bridge,
    "relay-sigkill": node_killed("relay"),
    "sink-sigkill": node_killed("sink"),
    "sink-sigkill-in-handler": sink_killed_in_handler,
    "daemon-sigkill": daemon_killed,
    "netns-partition": netns_partition,
    "netns-stall": netns_stall,
    "workflow-steps": workflow_steps,
    "workflow-runner-sigkill": workflow_runner_killed,
    "source-sigterm": source_terminated,
}
