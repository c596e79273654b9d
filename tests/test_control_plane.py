"""The control plane's structure: keys parsed only by keyexprs, typed verbs, one import direction."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import zflow
from zflow import codec, keyexprs
from zflow.errors import Problem, RuntimeFailure, UserError
from zflow.transport import control as ctl
from zflow.transport.control import RemoteFailure
from zflow.transport.control_client import ControlClient


def test_daemon_and_bundle_keys_parse_back_to_what_built_them():
    assert keyexprs.parse_daemon_ctl(keyexprs.daemon_ctl("edge-1", "instances", "load")) == ("edge-1",
                                                                                            "instances/load")
    assert keyexprs.parse_daemon_ctl(keyexprs.daemon_ctl("*", "status")) == ("*", "status")
    assert keyexprs.parse_daemon_alive(keyexprs.daemon_alive("edge-1")) == "edge-1"
    digest = "a" * 64
    assert keyexprs.parse_bundle(keyexprs.bundle(digest)) == digest
    # a key of another family is not mistaken for one of these
    assert keyexprs.parse_daemon_ctl(keyexprs.sched("place")) is None
    assert keyexprs.parse_daemon_ctl("zflow/ctl/daemon/edge-1") is None
    assert keyexprs.parse_daemon_alive(keyexprs.node_alive("f", "i", "n")) is None
    assert keyexprs.parse_bundle(keyexprs.instance_record("f", "i")) is None


# ---- typed verbs: bad requests are refused naming the field, errors keep their Problems ----------
def test_every_daemon_verb_has_a_request_type_and_a_handler(router, tmp_path):
    from daemon_helpers import in_process_daemons

    with in_process_daemons(router, tmp_path, "d1") as [d1]:
        assert set(d1.control.handlers) == set(ctl.DAEMON_VERBS)
        # the status a daemon answers is the one its own typed answer describes
        assert set(d1.status()) == {f.name for f in dataclasses.fields(ctl.StatusAnswer)}


def test_a_malformed_request_is_refused_with_the_field_it_lacks_over_zenoh(router, zsession, tmp_path):
    from daemon_helpers import in_process_daemons

    client = ControlClient(zsession)
    with in_process_daemons(router, tmp_path, "d1"):
        with pytest.raises(RemoteFailure) as missing:
            client.call("d1", "instances/load", {"wait_start": True})
        with pytest.raises(RemoteFailure) as mistyped:
            client.call("d1", "instances/start", {"flow": "f", "instance": "i", "generation": "seven"})
        with pytest.raises(RemoteFailure) as unknown:
            client.call("d1", "instances/launch", {})
        with pytest.raises(RemoteFailure) as absent:  # well-formed, refused by the manager itself
            client.ask("d1", ctl.StopRequest(flow="f", instance="nope"))
    [p] = missing.value.problems
    assert p.path == ("instances/load", "record") and p.message == "missing: expected a map"
    assert str(missing.value) == "daemon 'd1': instances/load.record: missing: expected a map" and missing.value.user
    [p] = mistyped.value.problems
    assert p.path == ("instances/start", "generation")
    assert p.message == "expected an integer or null, found 'seven'"
    assert "unknown request 'instances/launch'" in str(unknown.value) and unknown.value.user
    assert "no instance 'f/nope' on daemon 'd1'" in str(absent.value) and absent.value.user


def test_problems_cross_the_wire_with_their_location():
    where = Problem("expected a number, found 'x'", file="flow.yaml", line=12, path=("nodes", 3, "cpu"),
                    hint="did you mean 'cpus'?")
    payload, enc = codec.encode(ctl.failed(UserError([where, Problem("second")])))
    answer = codec.decode(payload, enc)
    with pytest.raises(RemoteFailure) as err:
        ctl.raise_for("daemon 'd1'", answer)
    assert err.value.problems == [where, Problem("second")] and err.value.user
    assert isinstance(err.value, RuntimeFailure)  # callers that catch RuntimeFailure still do
    # an older peer that sends only the text is still understood
    with pytest.raises(RemoteFailure, match="daemon 'd1': it broke") as old:
        ctl.raise_for("daemon 'd1'", {"ok": False, "error": "it broke"})
    assert old.value.problems == [Problem("it broke")] and not old.value.user
    # a runtime failure is not bad input
    assert ctl.failed(RuntimeFailure("disk full"))["user"] is False


def test_decode_reports_every_problem_and_ignores_unknown_fields():
    req = ctl.decode(ctl.StateRequest, {"flow": "f", "instance": "i", "state": "running", "later": 1})
    assert req == ctl.StateRequest(flow="f", instance="i", state="running", events=[])
    with pytest.raises(UserError) as err:
        ctl.decode(ctl.StateRequest, {"flow": 3, "events": ["ok", 4]})
    paths = [p.path[1:] for p in err.value.problems]
    assert paths == [("flow",), ("instance",), ("state",), ("events", 1)]


# ---- one import direction: placement sits below the daemon, transport below both ---------------
BELOW = {"scheduler": ("zflow.daemon", "zflow.runtime", "zflow.workflows", "zflow.cli"),
         "transport": ("zflow.daemon", "zflow.scheduler", "zflow.runtime", "zflow.workflows", "zflow.cli")}


@pytest.mark.parametrize("package", sorted(BELOW))
def test_package_never_imports_the_layers_above_it(package):
    """Checked in the source, function-level imports included: a loop hidden in a function is one."""
    root = Path(zflow.__file__).parent / package
    wrong = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            wrong += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.startswith(BELOW[package])]
    assert wrong == []
