"""The control plane's structure: keys parsed only by keyexprs, typed verbs, one import direction."""

from __future__ import annotations

from zflow import keyexprs


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
