"""router_config/site-router.json5 is least privilege: every subject x key family x operation,
through real mTLS sessions and a real router running the shipped config.

One module-scoped site (router, PKI, one session per subject) measures every cell once; each
parametrised case then checks its cell. A cell is "allowed" when the operation had its effect
through the router: a put/delete reached a witness subscriber, a get was answered by a witness
queryable, a subscriber received a witness put, a queryable answered a witness get, a liveliness
token was seen by a witness. The witness is a session with the routers' certificate (everything).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh
from pki_helpers import localized, make_pki, tls_client

from zflow.errors import UserError
from zflow.transport.session import EmbeddedRouter, SessionOptions, free_port, open_session

SUBJECTS = {"router": "router", "daemon": "edge-1", "deployer": "zflow-ops", "observer": "zflow-observer",
            "unknown": "rogue"}
FAMILIES = ("data", "ctl", "alive", "runs", "tsdb", "build-req", "build-result", "records", "checkpoint", "stats",
            "runner")
OPS = ("put", "delete", "get", "subscribe", "queryable", "liveliness")

# The key each (family, operation) is tried on: the one that matters for that family.
KEYS: dict[str, dict[str, str]] = {
    "data": dict.fromkeys(OPS, "zflow/data/f/i/n/out"),
    "ctl": {"put": "zflow/ctl/instance/f/i/start", "delete": "zflow/ctl/instance/f/i/start",
            "get": "zflow/ctl/daemon/edge-1/instances/load", "subscribe": "zflow/ctl/instance/f/i/start",
            "queryable": "zflow/ctl/daemon/edge-1/instances/load", "liveliness": "zflow/ctl/daemon/edge-1"},
    "alive": dict.fromkeys(OPS, "zflow/alive/daemon/edge-1"),
    "runs": dict.fromkeys(OPS, "zflow/runs/wf/r1"),
    "tsdb": dict.fromkeys(OPS, "zflow/tsdb/ds/x"),
    "build-req": dict.fromkeys(OPS, "zflow/build/action/req/b1"),  # only deployers ask for builds
    "build-result": dict.fromkeys(OPS, "zflow/build/action/result/b1"),  # only builders answer
    "records": dict.fromkeys(OPS, "zflow/ctl/records/f/i"),  # the daemons' replicated instance records
    "checkpoint": dict.fromkeys(OPS, "zflow/ctl/checkpoint/f/i/n"),
    "stats": dict.fromkeys(OPS, "zflow/ctl/instance/f/i/stats/n"),  # a node's statistics
    "runner": dict.fromkeys(OPS, "zflow/alive/runner/wf/r1"),  # a workflow runner's token
}

_RW = {"put", "delete", "get", "subscribe", "queryable"}
_READ = {"get", "subscribe"}
# What each subject may do, per family (everything else must be refused).
ALLOWED: dict[str, dict[str, set[str]]] = {
    "router": {f: set(OPS) for f in FAMILIES},
    # daemon edge-1: its own control queryable and token; instance signals it only receives
    "daemon": {"data": _RW, "ctl": {"get", "subscribe", "queryable"}, "alive": {"liveliness"},
               "runs": _RW, "tsdb": _RW, "build-req": _READ, "build-result": _RW - {"delete"},
               "records": _RW - {"delete"}, "checkpoint": _RW,
               "stats": _RW - {"delete"}, "runner": {"liveliness"}},
    # deployer: commands everything, but never takes a daemon's identity nor writes its records
    "deployer": {"data": _RW, "ctl": {"put", "delete", "get", "subscribe"}, "alive": set(),
                 "runs": _RW, "tsdb": _RW, "build-req": _READ | {"put"}, "build-result": _READ,
                 "records": {"get"}, "checkpoint": {"get"},
                 "stats": _RW, "runner": {"liveliness"}},
    "observer": {"data": _READ, "ctl": {"subscribe"}, "alive": set(), "runs": _READ, "tsdb": _READ,
                 "build-req": _READ, "build-result": _READ, "records": _READ, "checkpoint": _READ, "stats": _READ,
                 "runner": set()},
    "unknown": {f: set() for f in FAMILIES},
}

SETTLE = 0.5  # after the expected effects are seen, how long unexpected ones get to show up


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


class Site:
    """Router, one session per subject, and the measured matrix."""

    def __init__(self, tmp: Path):
        make_pki(tmp / "certs", ["router", *SUBJECTS.values(), "edge-2"])
        self.tmp = tmp
        self.endpoint = f"tls/127.0.0.1:{free_port()}"
        self.config = localized("site-router.json5", tmp)
        self.seen: dict[tuple[str, str, str], bool] = {}

    def client(self, cn: str | None) -> SessionOptions:
        return tls_client(self.endpoint, self.tmp, cn)

    def measure(self, sessions: dict[str, Any], witness: Any) -> None:
        lock = threading.Lock()
        hits: set[tuple[str, str, str]] = set()

        def hit(subject: str, family: str, op: str) -> None:
            with lock:
                hits.add((subject, family, op))

        def expected(op: str) -> set[tuple[str, str]]:
            return {(s, f) for s in SUBJECTS for f in FAMILIES if op in ALLOWED[s][f]}

        def done(op: str) -> bool:
            with lock:
                return all((s, f, op) in hits for s, f in expected(op))

        keep: list[Any] = []
        # witness side: who put/deleted what (attachment = subject), answering gets
        by_key = {(f, op): KEYS[f][op] for f in FAMILIES for op in ("put", "delete")}

        def on_witness(sample: Any) -> None:
            who = sample.attachment.to_string() if sample.attachment is not None else ""
            op = "put" if sample.kind == zenoh.SampleKind.PUT else "delete"
            for f in FAMILIES:
                if who in SUBJECTS and by_key[(f, op)] == str(sample.key_expr):
                    hit(who, f, op)

        keep.append(witness.declare_subscriber("zflow/**", on_witness))
        keep.append(witness.declare_queryable("zflow/**", lambda q: q.reply(q.key_expr, b"witness")))
        # every subject subscribes and serves on each family's key
        for s, sess in sessions.items():
            for f in FAMILIES:
                keep.append(sess.declare_subscriber(
                    KEYS[f]["subscribe"], lambda smp, s=s, f=f: smp.payload.to_bytes() == b"w-sub" and hit(s, f, "subscribe")))
                keep.append(sess.declare_queryable(
                    KEYS[f]["queryable"], lambda q, s=s: q.reply(q.key_expr, s.encode())))
        time.sleep(0.3)  # declarations propagate asynchronously; the loops below retry anyway
        # put / delete
        deadline = time.monotonic() + 8
        while not (done("put") and done("delete")) and time.monotonic() < deadline:
            for s, sess in sessions.items():
                for f in FAMILIES:
                    sess.put(KEYS[f]["put"], b"x", attachment=s)
                    sess.delete(KEYS[f]["delete"], attachment=s)
            _wait(lambda: done("put") and done("delete"), 0.5)
        time.sleep(SETTLE)
        # subscribe: the witness publishes on each family's key
        deadline = time.monotonic() + 8
        while True:
            for f in FAMILIES:
                witness.put(KEYS[f]["subscribe"], b"w-sub")
            _wait(lambda: done("subscribe"), 0.5)
            if done("subscribe") or time.monotonic() > deadline:
                break
        time.sleep(SETTLE)
        # get: each subject asks each family's key; only the witness's answer counts
        deadline = time.monotonic() + 8
        while not done("get") and time.monotonic() < deadline:
            pending = [(s, f, sess.get(KEYS[f]["get"], timeout=1.0)) for s, sess in sessions.items()
                       for f in FAMILIES]
            for s, f, replies in pending:
                if any(r.ok is not None and r.ok.payload.to_bytes() == b"witness" for r in replies):
                    hit(s, f, "get")
        # queryable: the witness asks each family's key; answers name the subject
        deadline = time.monotonic() + 8
        while not done("queryable") and time.monotonic() < deadline:
            for f in FAMILIES:
                for r in witness.get(KEYS[f]["queryable"], target=zenoh.QueryTarget.ALL, timeout=1.0):
                    who = r.ok.payload.to_string() if r.ok is not None else ""
                    if who in SUBJECTS:
                        hit(who, f, "queryable")
        # liveliness: one subject at a time (a token carries no author), seen by the witness
        for s, sess in sessions.items():
            tokens = [sess.liveliness().declare_token(KEYS[f]["liveliness"]) for f in FAMILIES]
            want = {KEYS[f]["liveliness"] for f in FAMILIES if "liveliness" in ALLOWED[s][f]}

            def visible() -> set[str]:
                return {str(r.ok.key_expr) for r in witness.liveliness().get("zflow/**", timeout=1.0)
                        if r.ok is not None}

            deadline = time.monotonic() + 5
            got = visible()
            while not want <= got and time.monotonic() < deadline:
                got = visible()
            time.sleep(SETTLE)
            got |= visible()
            for f in FAMILIES:
                if KEYS[f]["liveliness"] in got:
                    hit(s, f, "liveliness")
            for t in tokens:
                t.undeclare()
            _wait(lambda: not visible(), 5)
        for k in keep:
            k.undeclare()
        self.seen = {(s, f, op): (s, f, op) in hits for s in SUBJECTS for f in FAMILIES for op in OPS}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("acl"))
    with EmbeddedRouter(listen=[site.endpoint], config_file=site.config), \
            open_session(site.client("router")) as witness:
        sessions = {}
        opened = []
        try:
            for subject, cn in SUBJECTS.items():
                cm = open_session(site.client(cn))
                sessions[subject] = cm.__enter__()
                opened.append(cm)
            site.measure(sessions, witness)
            yield site
        finally:
            for cm in reversed(opened):
                cm.__exit__(None, None, None)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_acl_cell(site: Site, subject: str, family: str, op: str) -> None:
    allowed = op in ALLOWED[subject][family]
    assert site.seen[(subject, family, op)] == allowed, (
        f"{subject} ({SUBJECTS[subject]}) {op} on {KEYS[family][op]}: "
        f"expected {'allowed' if allowed else 'refused'}, it was {'allowed' if not allowed else 'refused'}")


@pytest.mark.parametrize("how", ["plain-tcp", "tls-without-certificate"])
def test_no_certificate_cannot_connect(site: Site, how: str) -> None:
    port = site.endpoint.rsplit(":", 1)[1]
    opts = (SessionOptions(mode="client", connect=[f"tcp/127.0.0.1:{port}"]) if how == "plain-tcp"
            else site.client(None))
    with pytest.raises(UserError, match="cannot open Zenoh session"), open_session(opts):
        pass


def test_a_daemon_cannot_take_another_daemons_identity(site: Site) -> None:
    """edge-2 may serve its own control keys and token, never edge-1's."""
    with open_session(site.client("router")) as witness, open_session(site.client("edge-2")) as edge2:
        own = edge2.declare_queryable("zflow/ctl/daemon/edge-2/**", lambda q: q.reply(q.key_expr, b"edge-2"))
        other = edge2.declare_queryable("zflow/ctl/daemon/edge-1/**", lambda q: q.reply(q.key_expr, b"edge-2"))
        tokens = [edge2.liveliness().declare_token(f"zflow/alive/daemon/{d}") for d in ("edge-1", "edge-2")]

        def answers(daemon: str) -> list[bytes]:
            return [r.ok.payload.to_bytes() for r in witness.get(f"zflow/ctl/daemon/{daemon}/status", timeout=1.0)
                    if r.ok is not None]

        def alive() -> set[str]:
            return {str(r.ok.key_expr) for r in witness.liveliness().get("zflow/alive/daemon/*", timeout=1.0)
                    if r.ok is not None}

        _wait(lambda: answers("edge-2") and "zflow/alive/daemon/edge-2" in alive(), 5)
        time.sleep(SETTLE)
        assert answers("edge-2") == [b"edge-2"]
        assert alive() == {"zflow/alive/daemon/edge-2"}
        assert answers("edge-1") == []
        for t in tokens:
            t.undeclare()
        own.undeclare()
        other.undeclare()


def test_observer_reads_daemon_status_but_cannot_command(site: Site) -> None:
    with open_session(site.client("edge-1")) as daemon, open_session(site.client("zflow-observer")) as observer:
        asked: list[str] = []

        def serve(q: Any) -> None:
            asked.append(str(q.key_expr))
            q.reply(q.key_expr, b"ok")

        ctl = daemon.declare_queryable("zflow/ctl/daemon/edge-1/**", serve)
        status: list[Any] = []
        deadline = time.monotonic() + 5
        while not status and time.monotonic() < deadline:
            status = [r for r in observer.get("zflow/ctl/daemon/edge-1/status", timeout=1.0) if r.ok is not None]
        assert status
        for verb in ("instances/load", "instances/update", "instances/delete", "instances/stop"):
            assert [r for r in observer.get(f"zflow/ctl/daemon/edge-1/{verb}", timeout=1.0) if r.ok] == []
        assert asked == ["zflow/ctl/daemon/edge-1/status"] * len(asked)
        ctl.undeclare()
