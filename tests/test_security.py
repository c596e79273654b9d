"""Hostile clients against the shipped router_config/, through the real CLI and raw Zenoh:
listeners are only the configured ones, tokens never leave a daemon, daemons run only code a
trusted deployer signed (checked before anything is written), bundles never carry secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import ROOT, DaemonProcess, env, lines, pipeline, wait_until, write_operators
from pki_helpers import localized, make_pki, tls_client

from zflow import codec
from zflow.daemon.signing import keygen, load_signer
from zflow.daemon.state import InstanceRecord
from zflow.errors import RuntimeFailure, UserError
from zflow.transport.auth import check_claim, issue_token, new_nonce, token_claim
from zflow.transport.session import EmbeddedRouter, SessionOptions, free_port, open_session

pytestmark = pytest.mark.timeout(120)
SECRET = b"s" * 32
IMPORT_MARKER = "IMPORTED"


def tcp_listeners(pid: int) -> set[tuple[str, int]]:
    """The TCP sockets process ``pid`` listens on, from /proc (address as text, port)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A" or parts[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = parts[1].split(":")
            if table == "tcp":
                ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                ip = "::" if set(addr) == {"0"} else addr
            out.add((ip, int(port, 16)))
    return out


def zflow_cli(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zflow", *args], env={**env(), **(extra_env or {})},
                          capture_output=True, text=True, timeout=90, cwd=str(ROOT))


def client_config(tmp: Path, cn: str, endpoint: str) -> str:
    """edge-daemon.json5 with certificate ``cn``, connecting to ``endpoint``."""
    path = tmp / f"client-{cn}.json5"
    path.write_text(Path(localized("edge-daemon.json5", tmp)).read_text()
                    .replace("certs/edge-1", f"certs/{cn}")
                    .replace("tls/site-router.local:7447", endpoint))
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pki")
    make_pki(tmp / "certs", ["router", "zflow-ops", "zflow-observer", "edge-1", "edge-2", "cloud-1", "rogue"])
    return tmp


@pytest.fixture
def site(pki: Path) -> Iterator[tuple[str, Path]]:
    endpoint = f"tls/127.0.0.1:{free_port()}"
    with EmbeddedRouter(listen=[endpoint], config_file=localized("site-router.json5", pki)):
        yield endpoint, pki


# -- 12: listen only where the config says ----------------------------------------------------------
def test_router_daemon_listens_only_on_its_tls_endpoint(pki: Path, tmp_path: Path) -> None:
    """`zflow daemon run --router --zenoh-config site-router.json5`: the TLS endpoint of the file and
    nothing else over TCP; a plain-TCP client fails to connect, a certified one gets in."""
    port = free_port()
    cfg = tmp_path / "router.json5"
    cfg.write_text(Path(localized("site-router.json5", pki)).read_text()
                   .replace("tls/0.0.0.0:7447", f"tls/127.0.0.1:{port}"))
    daemon = DaemonProcess("site", tmp_path / "site", [], "--router", "--zenoh-config", str(cfg))
    try:
        daemon.wait_ready()
        assert tcp_listeners(daemon.proc.pid) == {("127.0.0.1", port)}
        with pytest.raises(UserError, match="cannot open Zenoh session"), \
                open_session(SessionOptions(mode="client", connect=[f"tcp/127.0.0.1:{port}"])):
            pass
        with open_session(tls_client(f"tls/127.0.0.1:{port}", pki, "zflow-ops")) as s:
            assert s.info.routers_zid()
    finally:
        daemon.kill()


@pytest.mark.parametrize("name", ["edge-daemon.json5", "cloud-peer.json5"])
def test_client_and_peer_daemons_listen_only_where_their_config_says(site, name: str, tmp_path: Path) -> None:
    endpoint, pki = site
    port = free_port()
    cfg = tmp_path / name
    cfg.write_text(Path(localized(name, pki)).read_text().replace("tls/0.0.0.0:7448", f"tls/127.0.0.1:{port}"))
    mode = ["--mode", "peer"] if "peer" in name else []
    cn = "cloud-1" if "peer" in name else "edge-1"
    daemon = DaemonProcess(cn, tmp_path / cn, [endpoint], "--zenoh-config", str(cfg), *mode)
    try:
        daemon.wait_ready()
        assert tcp_listeners(daemon.proc.pid) == ({("127.0.0.1", port)} if "peer" in name else set())
    finally:
        daemon.kill()


# -- 14: tokens never leave the daemon ----------------------------------------------------------------
def test_status_replies_never_carry_the_token(site, tmp_path: Path) -> None:
    endpoint, pki = site
    token = issue_token(SECRET, "edge-1")
    cfg = client_config(pki, "edge-1", endpoint)
    daemon = DaemonProcess("edge-1", tmp_path / "edge-1", [], "--zenoh-config", cfg, "--token", token)
    try:
        daemon.wait_ready()
        raw = []
        for cn in ("zflow-observer", "edge-2", "zflow-ops"):
            with open_session(tls_client(endpoint, pki, cn)) as s:
                for nonce in (None, "n1"):
                    payload, enc = codec.encode({"nonce": nonce} if nonce else {})
                    replies = [r.ok.payload.to_bytes() for r in
                               s.get("zflow/ctl/daemon/edge-1/status", payload=payload, encoding=enc, timeout=5)
                               if r.ok is not None]
                    assert len(replies) == 1, cn
                    raw.extend(replies)
        mac = token.rsplit(".", 1)[1].encode()
        assert not [r for r in raw if mac in r or token.encode() in r]
        shown = codec.decode(raw[-1], codec.MSGPACK)["token"]
        assert shown["for"] == "edge-1" and len(shown["fingerprint"]) == 16
        listed = zflow_cli("daemon", "list", "--zenoh-config", client_config(pki, "zflow-ops", endpoint),
                           "--secret-file", str(_secret_file(tmp_path)))
        assert listed.returncode == 0, listed.stderr
        assert "edge-1" in listed.stdout and "valid" in listed.stdout
        assert token not in listed.stdout + listed.stderr
        status = zflow_cli("daemon", "status", "edge-1", "--zenoh-config", client_config(pki, "zflow-ops", endpoint))
        assert status.returncode == 0 and mac.decode() not in status.stdout
        on_disk = tmp_path / "edge-1" / "daemon.resolved.json"  # the exec'd daemon reads its token here
        assert oct(on_disk.stat().st_mode & 0o777) == "0o600"
    finally:
        daemon.kill()


def _secret_file(tmp: Path) -> Path:
    path = tmp / "cluster.secret"
    path.write_bytes(SECRET)
    return path


def test_a_token_proof_answers_one_challenge_only() -> None:
    token = issue_token(SECRET, "edge-1")
    first = new_nonce()
    claim = token_claim(token, first)
    assert check_claim(SECRET, "edge-1", claim, first) is None
    assert "does not match" in check_claim(SECRET, "edge-1", claim, new_nonce())
    assert "does not match" in check_claim(SECRET, "edge-1", {**(claim or {}), "proof": None}, first)
    assert "issued for daemon 'edge-1'" in check_claim(SECRET, "edge-2", claim, first)


# -- 15: daemons authorize the code they load --------------------------------------------------------
HOSTILE_OPS = f'''
import pathlib, zflow
pathlib.Path(__file__).with_name("{IMPORT_MARKER}").write_text("import-time code ran")
pathlib.Path("{{marker}}").write_text("import-time code ran")


@zflow.source
def ticks(ctx):
    while ctx.sleep(0.05):
        yield {{"i": 1}}


class Collect(zflow.Sink):
    def on_input(self, port, value, ctx):
        pass
'''

FLOW = """\
name: evil
sources:
  - {id: src, operator: ./ops/nodes.py:ticks, outputs: [out]}
sinks:
  - {id: sink, operator: ./ops/nodes.py:Collect, inputs: [in]}
links:
  - {from: {node: src, output: out}, to: {node: sink, input: in}}
"""


@pytest.fixture
def guarded(site, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """edge-1 trusts the operators' deployer key only; hostile operators wait in ``evil/``."""
    endpoint, pki = site
    ops_key = keygen(tmp_path / "ops.key")
    marker = tmp_path / "marker"
    evil = tmp_path / "evil"
    (evil / "ops").mkdir(parents=True)
    (evil / "ops" / "nodes.py").write_text(HOSTILE_OPS.replace("{marker}", str(marker)))
    (evil / "flow.yaml").write_text(FLOW)
    data = tmp_path / "edge-1"
    daemon = DaemonProcess("edge-1", data, [], "--zenoh-config", client_config(pki, "edge-1", endpoint),
                           "--trust-deployer", ops_key.public)
    try:
        daemon.wait_ready()
        yield {"endpoint": endpoint, "pki": pki, "ops_key": ops_key, "marker": marker, "evil": evil,
               "data": data, "tmp": tmp_path}
    finally:
        daemon.kill()


def _nothing_written(g: dict[str, Any]) -> None:
    assert not g["marker"].exists(), "hostile module was imported"
    written = [*(g["data"] / "bundles").rglob("*"), *(g["data"] / "instances").rglob("*")]
    assert written == [], f"written on the daemon: {written}"


def test_instance_create_with_another_daemons_certificate_runs_nothing(guarded) -> None:
    """The issue's reproduction: the public CLI, edge-2's certificate, no cluster secret, an
    untrusted deployer key (the attacker's own): refused before any byte of code lands."""
    g = guarded
    attacker_key = keygen(g["tmp"] / "attacker.key")
    proc = zflow_cli("instance", "create", str(g["evil"] / "flow.yaml"), "--id", "x1",
                     "--zenoh-config", client_config(g["pki"], "edge-2", g["endpoint"]),
                     "--deployer-key", str(attacker_key.path))
    assert proc.returncode == 1, proc.stderr
    assert "which this daemon does not trust: refused" in proc.stderr
    _nothing_written(g)
    # and the daemon's own certificate cannot stand in for a deployer's key either
    proc = zflow_cli("instance", "create", str(g["evil"] / "flow.yaml"), "--id", "x2",
                     "--zenoh-config", client_config(g["pki"], "edge-1", g["endpoint"]),
                     extra_env={"ZFLOW_DEPLOYER_KEY": str(g["tmp"] / "fresh.key")})
    assert proc.returncode == 1 and "does not trust" in proc.stderr
    _nothing_written(g)


@pytest.mark.parametrize("forgery", ["unsigned", "untrusted", "tampered"])
def test_raw_load_queries_are_refused_before_anything_is_written(guarded, forgery: str) -> None:
    """instances/load straight over Zenoh with a served bundle, as another daemon would send it."""
    from zflow.daemon.bundles import BundleServer, ship_graph
    from zflow.dataflow.compiler import compile_file
    from zflow.transport.control_client import ControlClient

    g = guarded
    graph = compile_file(str(g["evil"] / "flow.yaml"), instance="r1")
    shipped, payloads = ship_graph(graph)
    rec = InstanceRecord(shipped.flow, "r1", shipped.to_dict(), dict.fromkeys(shipped.nodes, "edge-1/default"))
    if forgery == "untrusted":
        rec.signature = keygen(g["tmp"] / "other.key").sign(rec.flow, rec.instance, rec.graph)
    elif forgery == "tampered":  # a real signature over a harmless graph, sent with another one
        rec.signature = g["ops_key"].sign(rec.flow, rec.instance, {**rec.graph, "nodes": {}})
    with open_session(tls_client(g["endpoint"], g["pki"], "edge-2")) as s:
        server = BundleServer(s)
        for digest, payload in payloads.items():
            server.add(digest, payload)
        try:
            with pytest.raises(RuntimeFailure, match="refused"):
                ControlClient(s).call("edge-1", "instances/load", {"record": rec.to_dict()}, timeout=20)
            with pytest.raises(RuntimeFailure, match="refused"):
                ControlClient(s).call("edge-1", "instances/update", {"record": rec.to_dict()}, timeout=20)
        finally:
            server.close()
    _nothing_written(g)


def test_the_trusted_deployer_still_deploys(guarded) -> None:
    g = guarded
    ops = write_operators(g["tmp"] / "good")
    out = g["tmp"] / "out.jsonl"
    flow = g["tmp"] / "good.yaml"
    flow.write_text(json.dumps({
        "name": "good",
        "sources": [{"id": "src", "operator": f"{ops}:ticks", "outputs": ["out"]}],
        "sinks": [{"id": "sink", "operator": f"{ops}:Collect", "inputs": ["in"],
                   "configuration": {"path": str(out)}}],
        "links": [{"from": {"node": "src", "output": "out"}, "to": {"node": "sink", "input": "in"}}]}))
    proc = zflow_cli("instance", "create", str(flow), "--id", "ok1", "--deployer-key", str(g["ops_key"].path),
                     "--zenoh-config", client_config(g["pki"], "zflow-ops", g["endpoint"]))
    assert proc.returncode == 0, proc.stderr
    assert wait_until(lambda: lines(out) >= 2, 20)
    assert zflow_cli("instance", "delete", "ok1", "--zenoh-config",
                     client_config(g["pki"], "zflow-ops", g["endpoint"])).returncode == 0


def test_deployer_keys_from_the_cli(tmp_path: Path) -> None:
    key = tmp_path / "k" / "deployer.key"
    made = zflow_cli("deployer", "keygen", "--out", str(key))
    assert made.returncode == 0 and made.stdout.startswith("ed25519:")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert zflow_cli("deployer", "pubkey", "--key", str(key)).stdout == made.stdout
    again = zflow_cli("deployer", "keygen", "--out", str(key))
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = tmp_path / "daemon.yaml"
    bad.write_text("trusted_deployers: [not-a-key]\n")
    run = zflow_cli("daemon", "run", "--config", str(bad), "--data-dir", str(tmp_path / "d"),
                    "--connect", f"tcp/127.0.0.1:{free_port()}")
    assert run.returncode == 2 and "expected 'ed25519:" in run.stderr and "Traceback" not in run.stderr
    assert load_signer(key).public == made.stdout.strip()


# -- 16: bundles never carry secrets -------------------------------------------------------------------
def test_a_deploy_from_a_folder_full_of_secrets_ships_none(router, tmp_path: Path) -> None:
    from daemon_helpers import in_process_daemons

    from zflow.daemon.instance_deploy import create_instance, delete_instance

    project = tmp_path / "project"
    ops = write_operators(project)
    make_pki(project / "certs", ["edge-1"])  # ca.pem (public), edge-1.pem, edge-1-key.pem
    (project / "cluster.secret").write_text("ab" * 32 + "\n")
    (project / "edge-1.token").write_text(issue_token(SECRET, "edge-1"))
    (project / "notes.txt").write_text(f"token for the lab: {issue_token(SECRET, 'edge-2')}\n")
    (project / "renamed.pem").write_bytes((project / "certs" / "edge-1-key.pem").read_bytes())
    (project / "random-name").write_text("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")
    keygen(project / "deployer.key")
    (project / "data").mkdir()
    (project / "data" / "big.csv").write_text("a,b\n1,2\n")
    (project / "helper.py").write_text("X = 1\n")
    (project / ".zflowignore").write_text("# data stays here\ndata/\n*.txt\n")
    said: list[str] = []
    with in_process_daemons(router, tmp_path, "edge-1"), open_session(router.client_options()) as s:
        out = tmp_path / "out.jsonl"
        create_instance(s, pipeline(ops, out), instance="b1", log=said.append)
        assert wait_until(lambda: lines(out) >= 2, 20)
        delete_instance(s, "b1")
    shipped = sorted(str(p.relative_to(d)) for d in (tmp_path / "edge-1" / "bundles").glob("*/files")
                     for p in d.rglob("*") if p.is_file())
    assert shipped == ["certs/ca.pem", "certs/edge-1.pem", "helper.py", "nodes.py"]
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "edge-1").rglob("*") if p.is_file())
    for secret in (b"PRIVATE KEY", b"zft1.", b"ab" * 32, b"c2VjcmV0c2Vj"):
        assert secret not in blobs
    note = next(m for m in said if "not shipped" in m)
    for name in ("cluster.secret", "edge-1.token", "renamed.pem", "random-name", "deployer.key",
                 "certs/edge-1-key.pem"):
        assert name in note


def test_router_daemons_local_socket_gives_node_rights_only(pki: Path, tmp_path: Path) -> None:
    """The node hosts' private socket of a router daemon: no loopback TCP any local user could
    reach, and what connects there may run nodes but never command a daemon."""
    from zflow.daemon.config import DaemonConfig
    from zflow.daemon.server import Daemon

    endpoint = f"tls/127.0.0.1:{free_port()}"
    conf = DaemonConfig(id="site", router=True, data_dir=str(tmp_path / "site"),
                        zenoh={"listen": [endpoint], "config_file": localized("site-router.json5", pki)})
    with Daemon(conf, echo=False) as daemon:
        local = daemon.node_session()
        sock = Path(local.connect[0].split("/", 1)[1])
        assert local.connect[0].startswith("unixsock-stream/")
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
        assert sock.parent == tmp_path / "site" / "run"
        with open_session(local) as s:
            assert s.info.routers_zid()
            for verb in ("status", "instances/load", "instances/update"):
                assert [r for r in s.get(f"zflow/ctl/daemon/site/{verb}", timeout=1.0) if r.ok] == []
            assert [r for r in s.liveliness().get("zflow/alive/daemon/*", timeout=2.0) if r.ok]  # may watch
        with open_session(tls_client(endpoint, pki, "zflow-ops")) as ops:  # the daemon itself answers
            assert [r for r in ops.get("zflow/ctl/daemon/site/status", timeout=5.0) if r.ok]
    assert not sock.exists()


def test_the_cloud_peer_enforces_the_routers_access_control() -> None:
    import zenoh
    from pki_helpers import CONFIGS

    def acl(name: str) -> object:
        return json.loads(zenoh.Config.from_file(str(CONFIGS / name)).get_json("access_control"))

    assert acl("cloud-peer.json5") == acl("site-router.json5")


def test_what_reaches_a_cloud_peer_directly_obeys_the_acl(site, tmp_path: Path) -> None:
    """Sessions connecting straight to cloud-1's listener: a certificate outside the ACL can
    neither feed its subscribers nor ask it anything, an observer may read its status only,
    another daemon may do both."""
    from zflow.daemon.config import DaemonConfig
    from zflow.daemon.server import Daemon

    endpoint, pki = site
    port = free_port()
    cfg = tmp_path / "cloud.json5"
    cfg.write_text(Path(localized("cloud-peer.json5", pki)).read_text()
                   .replace("tls/0.0.0.0:7448", f"tls/127.0.0.1:{port}"))
    conf = DaemonConfig(id="cloud-1", data_dir=str(tmp_path / "cloud-1"),
                        zenoh={"mode": "peer", "connect": [endpoint], "config_file": str(cfg)})
    got: list[bytes] = []
    answered: dict[str, bool] = {}
    with Daemon(conf, echo=False) as cloud:
        sub = cloud.session.declare_subscriber("zflow/data/**", lambda s: got.append(s.payload.to_bytes()))
        for cn in ("edge-2", "zflow-observer", "rogue"):  # edge-2 first: its effects show the path works
            with open_session(tls_client(f"tls/127.0.0.1:{port}", pki, cn)) as s:
                def status(s: Any = s) -> bool:
                    return bool([r for r in s.get("zflow/ctl/daemon/cloud-1/status", timeout=1.0) if r.ok])

                answered[cn] = wait_until(status, 3 if cn == "edge-2" else 1)
                s.put("zflow/data/f/i/n/out", cn.encode())
                wait_until(lambda cn=cn: cn.encode() in got, 3 if cn == "edge-2" else 1)
        sub.undeclare()
    assert answered == {"edge-2": True, "zflow-observer": True, "rogue": False}
    assert got == [b"edge-2"]


def test_a_record_planted_on_disk_is_not_resumed(router, tmp_path: Path) -> None:
    """The second door: nodes start only from signed records, whatever path the record took
    (here a record file written into the daemon's data directory while it was down)."""
    from daemon_helpers import in_process_daemons

    from zflow.daemon.bundles import ship_graph
    from zflow.daemon.state import RecordStore
    from zflow.dataflow.compiler import compile_file

    marker = tmp_path / "marker"
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "nodes.py").write_text(HOSTILE_OPS.replace("{marker}", str(marker)))
    (tmp_path / "flow.yaml").write_text(FLOW)
    graph, _ = ship_graph(compile_file(str(tmp_path / "flow.yaml"), instance="p1"))
    graph = graph.with_instance("p1")
    rec = InstanceRecord(graph.flow, "p1", graph.to_dict(), dict.fromkeys(graph.nodes, "edge-1/default"),
                         state="running")
    for node in rec.graph["nodes"].values():  # no bundle to fetch: the code is already on disk
        node["deploy"].pop("bundle", None)
    RecordStore(tmp_path / "edge-1").save(rec)
    with in_process_daemons(router, tmp_path, "edge-1") as (daemon,):
        assert wait_until(lambda: any("cannot resume evil/p1" in line and "not signed" in line
                                      for line in daemon.logs), 10)
        assert not any(daemon.manager.runners.values())
    assert not marker.exists()


def test_zflowignore_rules_and_secrets_win_over_them(tmp_path: Path) -> None:
    from zflow.daemon.bundles import select_files

    (tmp_path / "sub").mkdir()
    for rel in ("a.py", "b.log", "keep.log", "sub/c.log", "sub/d.py", "cluster.secret"):
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / ".zflowignore").write_text("*.log\n!keep.log\n/sub/d.py\n!cluster.secret\n")
    keep, skipped = select_files(tmp_path)
    assert keep == ["a.py", "keep.log"]
    assert skipped == ["cluster.secret: its name matches '*.secret'"]
