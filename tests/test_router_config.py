"""router_config/: the shipped Zenoh configs load, mTLS admits certified sessions only, and the
access-control list keeps sessions outside it away from control keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zenoh
from pki_helpers import CONFIGS, localized, make_pki, tls_client

from zflow.errors import UserError
from zflow.transport.session import (
    EmbeddedRouter,
    SessionOptions,
    free_port,
    make_config,
    open_session,
)


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


@pytest.mark.timeout(60)
def test_daemons_work_through_the_shipped_mtls_and_acl_configs(site):
    """An edge daemon on edge-daemon.json5 runs a flow deployed by an operator; a daemon whose
    certificate is outside the ACL cannot even answer, so it is never given work."""
    from daemon_helpers import lines, pipeline, wait_until, write_operators

    from zflow.daemon.instance_deploy import create_instance, delete_instance
    from zflow.transport.control_client import ControlClient

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
    from zflow.daemon.instance_deploy import create_instance, delete_instance, find_instance

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
    from zflow.daemon.instance_deploy import create_instance, delete_instance
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
