"""Several hosts on real network stacks: a router host and two daemon hosts, each in its own
network namespace joined by veth links. A flow is spread across the daemon hosts; one host is
killed (processes and link) and its nodes are re-placed, and data flows again.

Needs root and ``ip netns``; skipped otherwise. Namespaces, links and processes are removed by
the fixture's finalizer even when the test fails. Addresses (10.213.x.0/24) exist only inside
the namespaces created here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_helpers import env, lines, wait_until, write_operators

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

_RUN = itertools.count()

FLOW = """\
name: field
sources:
  - {id: src, operator: ./ops/nodes.py:ticks, outputs: [out], deploy: {labels: {tier: edge}}}
operators:
  - {id: dbl, operator: ./ops/nodes.py:double, inputs: [in], outputs: [out], deploy: {labels: {tier: edge}}}
sinks:
  - id: sink
    operator: ./ops/nodes.py:Collect
    inputs: [in]
    configuration: {path: "{{ OUT }}"}
    deploy: {labels: {tier: edge}}
links:
  - {from: {node: src, output: out}, to: {node: dbl, input: in}}
  - {from: {node: dbl, output: out}, to: {node: sink, input: in}}
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _netns_usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    probe = f"zf{os.getpid()}p"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return "`ip netns add` is not permitted here"
    _ip("netns", "del", probe, check=False)
    return None


class Site:
    """Namespaces ``<p>r`` (router), ``<p>a`` and ``<p>b`` (daemon hosts), veth-linked to the router."""

    def __init__(self, tmp: Path):
        self.prefix = f"zf{os.getpid() % 100000}{next(_RUN)}"
        self.tmp = tmp
        self.ns = {h: f"{self.prefix}{h}" for h in ("r", "a", "b")}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def setup(self) -> None:
        for ns in self.ns.values():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        for i, host in enumerate(("a", "b"), start=1):
            r_end, h_end = f"{self.prefix}r{host}", f"{self.prefix}{host}r"
            _ip("link", "add", r_end, "type", "veth", "peer", "name", h_end)
            _ip("link", "set", r_end, "netns", self.ns["r"])
            _ip("link", "set", h_end, "netns", self.ns[host])
            _ip("-n", self.ns["r"], "addr", "add", f"10.213.{i}.1/24", "dev", r_end)
            _ip("-n", self.ns[host], "addr", "add", f"10.213.{i}.2/24", "dev", h_end)
            _ip("-n", self.ns["r"], "link", "set", r_end, "up")
            _ip("-n", self.ns[host], "link", "set", h_end, "up")

    def router_ip(self, host: str) -> str:
        return f"10.213.{1 if host == 'a' else 2}.1"

    def spawn(self, host: str, name: str, *argv: str) -> Path:
        ready = self.tmp / f"{name}.ready"
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", self.ns[host], sys.executable, "-m", "zflow", *argv,
                 "--ready-file", str(ready)],
                env=env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
        return ready

    def zflow(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ip", "netns", "exec", self.ns["r"], sys.executable, "-m", "zflow", *argv,
                               "--connect", "tcp/127.0.0.1:7447"], env=env(), capture_output=True,
                              text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"zflow {' '.join(argv)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n"
                                 + self.dump_logs())
        return proc

    def kill_host(self, host: str) -> None:
        """The host dies: every process in its namespace is killed and its link goes down."""
        self._kill_ns(self.ns[host])
        _ip("-n", self.ns["r"], "link", "set", f"{self.prefix}r{host}", "down", check=False)

    def _kill_ns(self, ns: str) -> None:
        pids = _ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs if p.exists())

    def teardown(self) -> None:
        for ns in self.ns.values():
            self._kill_ns(ns)
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(5)
        for ns in self.ns.values():
            _ip("netns", "del", ns, check=False)


@pytest.fixture
def site(tmp_path):
    why = _netns_usable()
    if why:
        pytest.skip(why)
    s = Site(tmp_path)
    try:
        s.setup()
        yield s
    finally:
        s.teardown()
        leftover = [ns for ns in s.ns.values() if ns in _ip("netns", "list", check=False).stdout]
        assert not leftover, f"namespaces left behind: {leftover}"


def start_flow(site: Site, tmp_path: Path, policy: str = "spread") -> tuple[Path, dict[str, str]]:
    """Router daemon (with the scheduler) on r, edge daemons on a and b, the flow spread on a and b
    (``pack``: all on one of them)."""
    write_operators(tmp_path / "ops")
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    out = tmp_path / "out.jsonl"
    edge_cfg = tmp_path / "edge.yaml"
    edge_cfg.write_text("labels: {tier: edge}\ncpus: 2\n")
    readies = [site.spawn("r", "router", "daemon", "run", "--router", "--listen", "tcp/0.0.0.0:7447",
                          "--id", "site", "--scheduler", "--data-dir", str(tmp_path / "site"))]
    assert wait_until(readies[0].exists, 20), site.dump_logs()
    for host in ("a", "b"):
        readies.append(site.spawn(host, f"edge-{host}", "daemon", "run", "--id", f"edge-{host}",
                                  "--config", str(edge_cfg), "--data-dir", str(tmp_path / host),
                                  "--connect", f"tcp/{site.router_ip(host)}:7447"))
    assert wait_until(lambda: all(r.exists() for r in readies), 30), site.dump_logs()
    assert wait_until(lambda: "edge-b" in site.zflow("daemon", "list").stdout, 10)
    site.zflow("instance", "create", str(flow), "--id", "n1", "--policy", policy, "--var", f"OUT={out}")
    status = json.loads(site.zflow("instance", "status", "n1", "--json").stdout)
    placed = {n: p.split("/")[0] for n, p in status["record"]["placement"].items()}
    assert len(set(placed.values())) == (2 if policy == "spread" else 1), placed
    assert wait_until(lambda: lines(out) >= 5, 20), site.dump_logs()
    return out, placed


def test_flow_spans_hosts_and_survives_losing_one(site, tmp_path):
    out, placed = start_flow(site, tmp_path)
    victim = placed["dbl"]
    survivor = "edge-a" if victim == "edge-b" else "edge-b"
    site.kill_host(victim[-1])
    killed_at, n = time.monotonic(), lines(out)
    assert wait_until(lambda: lines(out) >= n + 5, 30), "no data after losing a host\n" + site.dump_logs()
    recovered = time.monotonic() - killed_at
    status = json.loads(site.zflow("instance", "status", "n1", "--json").stdout)
    assert status["record"]["placement"]["dbl"] == f"{survivor}/default"
    assert any(f"daemon {victim} lost; node dbl re-placed on {survivor}" in e["what"]
               for e in status["record"]["events"])
    print(f"data flowing again {recovered:.2f}s after the host was killed")


def test_partitioned_host_hands_its_nodes_back_when_it_returns(site, tmp_path):
    """The link to a host is cut (its processes keep running): its nodes are re-placed after the
    lease; when the link comes back, the host adopts the newer placement and stops them."""
    out, placed = start_flow(site, tmp_path)
    victim = placed["dbl"]
    survivor = "edge-a" if victim == "edge-b" else "edge-b"
    link = f"{site.prefix}r{victim[-1]}"
    _ip("-n", site.ns["r"], "link", "set", link, "down")
    n = lines(out)
    assert wait_until(lambda: lines(out) >= n + 5, 30), "no data after the partition\n" + site.dump_logs()
    _ip("-n", site.ns["r"], "link", "set", link, "up")

    def victim_idle() -> bool:
        proc = site.zflow("daemon", "status", victim, check=False)
        return proc.returncode == 0 and json.loads(proc.stdout)["running"] == []

    assert wait_until(victim_idle, 30), "the returning host still runs moved nodes\n" + site.dump_logs()
    status = json.loads(site.zflow("instance", "status", "n1", "--json").stdout)
    assert status["record"]["placement"]["dbl"] == f"{survivor}/default"
    n = lines(out)
    assert wait_until(lambda: lines(out) >= n + 5, 10)


def test_every_node_of_a_lost_host_is_replaced_on_the_other(site, tmp_path):
    """Every node on one host, which dies (processes and link): the instance stays listed, all its
    nodes start on the other host (which kept a copy of their code), and status says running."""
    out, placed = start_flow(site, tmp_path, policy="pack")
    victim = placed["src"]
    survivor = "edge-a" if victim == "edge-b" else "edge-b"
    site.kill_host(victim[-1])
    n = lines(out)
    assert wait_until(lambda: lines(out) >= n + 5, 30), "no data after losing the host\n" + site.dump_logs()
    status = json.loads(site.zflow("instance", "status", "n1", "--json").stdout)
    assert {p.split("/")[0] for p in status["record"]["placement"].values()} == {survivor}
    assert status["health"] == "running", status
    assert status["record"]["generation"] >= 1
    assert "field/n1" in site.zflow("instance", "list").stdout
