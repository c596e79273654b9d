"""router_config/: the shipped Zenoh configs load, mTLS admits certified sessions only, and the
access-control list keeps sessions outside it away from control keys."""

from __future__ import annotations

import datetime
import ipaddress
import re
import time
from pathlib import Path

import pytest
import zenoh

from zflow.errors import UserError
from zflow.transport.session import (
    EmbeddedRouter,
    SessionOptions,
    free_port,
    make_config,
    open_session,
)

CONFIGS = Path(__file__).resolve().parent.parent / "router_config"


def make_pki(root: Path, names: list[str]) -> None:
    """A throwaway CA and one certificate per common name (SAN localhost/127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("zflow test CA")).issuer_name(name("zflow test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cn in names:
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(san, critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        (root / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (root / f"{cn}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def localized(name: str, tmp: Path) -> str:
    """The shipped config with its relative ``certs/`` paths pointing into ``tmp``."""
    text = (CONFIGS / name).read_text().replace('"certs/', f'"{tmp}/certs/')
    out = tmp / name
    out.write_text(text)
    return str(out)


def tls_client(endpoint: str, tmp: Path, cn: str | None) -> SessionOptions:
    extra: dict[str, object] = {"transport/link/tls/root_ca_certificate": str(tmp / "certs/ca.pem")}
    if cn:
        extra.update({"transport/link/tls/connect_certificate": str(tmp / f"certs/{cn}.pem"),
                      "transport/link/tls/connect_private_key": str(tmp / f"certs/{cn}-key.pem"),
                      "transport/link/tls/enable_mtls": True})
    return SessionOptions(mode="client", connect=[endpoint], extra=extra)


def edge_daemon(site: tuple[str, Path], name: str, cn: str | None = None):
    """A daemon named ``name`` in this process on edge-daemon.json5 with certificate ``cn`` (default: name)."""
    from zflow.daemon.config import DaemonConfig
    from zflow.daemon.server import Daemon

    endpoint, tmp = site
    cfg = tmp / f"{name}.json5"
    cfg.write_text(Path(localized("edge-daemon.json5", tmp)).read_text()
                   .replace("certs/edge-1", f"certs/{cn or name}"))
    conf = DaemonConfig(id=name, data_dir=str(tmp / name), zenoh={"connect": [endpoint], "config_file": str(cfg)})
    return Daemon(conf, echo=False)


@pytest.fixture
def site(tmp_path: Path):
    make_pki(tmp_path / "certs", ["router", "zflow-ops", "edge-1", "edge-2", "rogue"])
    endpoint = f"tls/127.0.0.1:{free_port()}"
    with EmbeddedRouter(listen=[endpoint], config_file=localized("site-router.json5", tmp_path)):
        yield endpoint, tmp_path


@pytest.mark.parametrize("name", ["site-router.json5", "edge-daemon.json5", "cloud-peer.json5"])
def test_shipped_configs_parse(name: str) -> None:
    cfg = zenoh.Config.from_file(str(CONFIGS / name))
    mode = re.search(r'mode:\s*"(\w+)"', (CONFIGS / name).read_text()).group(1)
    assert mode in cfg.get_json("mode")


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json5"
    bad.write_text("{ mode: 'router', listen: { endpoints: [ }")
    with pytest.raises(UserError, match="not a valid Zenoh config"):
        make_config(SessionOptions(config_file=str(bad)))


def test_tls_session_connects_and_plain_one_is_refused(site) -> None:
    endpoint, tmp = site
    with open_session(tls_client(endpoint, tmp, "edge-1")) as s:
        assert s.info.routers_zid()
    port = endpoint.rsplit(":", 1)[1]
    plain = SessionOptions(mode="client", connect=[f"tcp/127.0.0.1:{port}"])
    no_cert = tls_client(endpoint, tmp, None)  # TLS, but no client certificate for mTLS
    for opts in (plain, no_cert):
        with pytest.raises(UserError, match="cannot open Zenoh session"), open_session(opts):
            pass


def test_sessions_outside_the_acl_cannot_write_control_keys(site) -> None:
    endpoint, tmp = site
    got: list[str] = []
    with open_session(tls_client(endpoint, tmp, "zflow-ops")) as ops, \
            open_session(tls_client(endpoint, tmp, "rogue")) as rogue, \
            open_session(tls_client(endpoint, tmp, "edge-1")) as edge:
        sub = ops.declare_subscriber("zflow/**", lambda s: got.append(str(s.key_expr)))
        answered = ops.declare_queryable("zflow/ctl/daemon/edge-1/status",
                                         lambda q: q.reply(q.key_expr, b"ok"))
        data_pubs = [rogue.declare_publisher("zflow/data/f/i/n/rogue"),
                     edge.declare_publisher("zflow/data/f/i/n/edge")]
        deadline = time.monotonic() + 20  # declarations propagate asynchronously
        # A data-plane subscriber is what the ACL lets the router announce to every session.
        probe = ops.declare_subscriber("zflow/data/f/**", lambda _s: None)
        while not all(p.matching_status.matching for p in data_pubs):
            assert time.monotonic() < deadline, "the subscriber never became visible"
            time.sleep(0.05)
        edge_replies = []
        while not edge_replies:  # the permitted session sees the queryable once it has propagated
            assert time.monotonic() < deadline, "the queryable never answered the permitted session"
            edge_replies = [r for r in edge.get("zflow/ctl/daemon/edge-1/status", timeout=1.0) if r.ok]
        rogue.put("zflow/ctl/instance/f/i/stop", b"stop")
        rogue.put("zflow/ctl/instance/f/i/start", b"")
        edge.put("zflow/ctl/instance/f/i/start", b"")  # a daemon may stop an instance, never start one
        edge.put("zflow/ctl/instance/f/i/stop", b"stop")
        for pub in data_pubs:
            pub.put(b"1")
        rogue_replies = [r for r in rogue.get("zflow/ctl/daemon/edge-1/status", timeout=1.0) if r.ok]
        deadline = time.monotonic() + 3
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        sub.undeclare()
        answered.undeclare()
        for pub in data_pubs:
            pub.undeclare()
        probe.undeclare()
    assert sorted(got) == ["zflow/ctl/instance/f/i/stop", "zflow/data/f/i/n/edge", "zflow/data/f/i/n/rogue"]
    assert rogue_replies == []
    assert len(edge_replies) == 1


@pytest.mark.timeout(60)
def test_daemons_work_through_the_shipped_mtls_and_acl_configs(site):
    """An edge daemon on edge-daemon.json5 runs a flow deployed by an operator; a daemon whose
    certificate is outside the ACL cannot even answer, so it is never given work."""
    from daemon_helpers import lines, pipeline, wait_until, write_operators

    from zflow.daemon.client import ControlClient
    from zflow.daemon.deploy import create_instance, delete_instance

    endpoint, tmp = site
    ops = write_operators(tmp / "ops")
    out = tmp / "out.jsonl"
    with edge_daemon(site, "edge-1"), edge_daemon(site, "rogue"), \
            open_session(tls_client(endpoint, tmp, "zflow-ops")) as ops_session:
        assert [s["id"] for s in ControlClient(ops_session).statuses()] == ["edge-1"]
        rec = create_instance(ops_session, pipeline(ops, out), instance="tls1", policy="spread")
        assert set(rec.placement.values()) == {"edge-1/default"}
        assert wait_until(lambda: lines(out) >= 3, 15)
        delete_instance(ops_session, "tls1")


@pytest.mark.timeout(60)
def test_daemon_sends_the_stop_signal_through_the_acl_on_daemon_loss(site):
    """``--on-daemon-loss stop`` under the shipped ACL: when edge-2 goes, edge-1 (the leader)
    puts the instance stop signal, and the router lets it through to everyone."""
    import contextlib
    import queue

    from daemon_helpers import lines, pipeline, wait_until, write_operators

    from zflow import keyexprs
    from zflow.daemon.deploy import create_instance, delete_instance, find_instance

    endpoint, tmp = site
    ops = write_operators(tmp / "ops")
    out = tmp / "out.jsonl"
    hints = {"src": {"daemon": "edge-1"}, "dbl": {"daemon": "edge-2"}, "sink": {"daemon": "edge-1"}}
    signals: queue.Queue[str] = queue.Queue()
    with edge_daemon(site, "edge-1"), contextlib.ExitStack() as edge2, \
            open_session(tls_client(endpoint, tmp, "zflow-ops")) as ops_session:
        edge2.enter_context(edge_daemon(site, "edge-2"))
        sub = ops_session.declare_subscriber(keyexprs.instance_ctl("pipe", "s1", "stop"),
                                             lambda s: signals.put(str(s.key_expr)))
        try:
            create_instance(ops_session, pipeline(ops, out, deploy=hints), instance="s1", on_daemon_loss="stop")
            assert wait_until(lambda: lines(out) >= 2, 15)
            edge2.close()
            assert signals.get(timeout=10) == "zflow/ctl/instance/pipe/s1/stop"
            assert find_instance(ops_session, "s1")[0].state == "stopped"
            delete_instance(ops_session, "s1")
        finally:
            sub.undeclare()


@pytest.mark.timeout(60)
def test_router_daemon_runs_nodes_under_the_site_router_config(tmp_path):
    """``zflow daemon run --router --zenoh-config site-router.json5``: its own node hosts join
    over loopback TCP and still get their start signal through the ACL."""
    from daemon_helpers import lines, pipeline, wait_until, write_operators

    from zflow.daemon.config import DaemonConfig
    from zflow.daemon.deploy import create_instance, delete_instance
    from zflow.daemon.server import Daemon

    make_pki(tmp_path / "certs", ["router", "zflow-ops"])
    endpoint = f"tls/127.0.0.1:{free_port()}"
    ops = write_operators(tmp_path / "ops")
    out = tmp_path / "out.jsonl"
    conf = DaemonConfig(id="site", router=True, data_dir=str(tmp_path / "site"),
                        zenoh={"listen": [endpoint], "config_file": localized("site-router.json5", tmp_path)})
    with Daemon(conf, echo=False), open_session(tls_client(endpoint, tmp_path, "zflow-ops")) as s:
        create_instance(s, pipeline(ops, out), instance="r1")
        assert wait_until(lambda: lines(out) >= 3, 15)
        delete_instance(s, "r1")
