"""What a daemon tells about its node hosts: a node that fails for good is an instance event
shown by ``zflow instance status``, and node hosts find the router through ``ZFLOW_CONNECT``."""

from __future__ import annotations

import queue
import subprocess
import uuid
from pathlib import Path

import pytest
from daemon_helpers import in_process_daemons, wait_until
from runtime_helpers import graph, node

from zflow.daemon.instance_deploy import create_instance, delete_instance, find_instance
from zflow.dataflow.graph import RestartPolicy

pytestmark = pytest.mark.timeout(60)

NODES = '''
import json
import os
import sys

import zenoh
import zflow


@zflow.source
def broken(ctx):
    print("broken node: the sensor is unplugged", file=sys.stderr, flush=True)
    raise RuntimeError("no sensor")
    yield


@zflow.source
def own_session(ctx):
    """Like a Ryax action: open a Zenoh session of its own, from what the daemon exported."""
    conf = zenoh.Config()
    conf.insert_json5("mode", '"client"')
    conf.insert_json5("connect/endpoints", json.dumps(os.environ["ZFLOW_CONNECT"].split(",")))
    conf.insert_json5("scouting/multicast/enabled", "false")
    with zenoh.open(conf) as session:
        while ctx.sleep(0.1):
            session.put(ctx.config["key"], os.environ["ZFLOW_CONNECT"])
    yield from ()
'''


def write_nodes(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nodes.py").write_text(NODES)
    return root / "nodes.py"


def failure_events(zsession) -> list[dict]:
    return [e for e in find_instance(zsession, "f1")[0].events if e.get("kind") == "node-failed"]


def test_failed_node_is_an_instance_event_shown_by_status(router, zsession, tmp_path, cli_env, zflow_cmd):
    ops = write_nodes(tmp_path / "ops")
    restart = RestartPolicy(policy="on-failure", max_restarts=1, backoff_s=0.05)
    g = graph("bad", [node("src", "source", str(ops), attr="broken", outputs=["out"], restart=restart)], [])
    with in_process_daemons(router, tmp_path, "d1"):
        create_instance(zsession, g, instance="f1")
        assert wait_until(lambda: failure_events(zsession), 20)
        assert wait_until(lambda: find_instance(zsession, "f1")[1] == {"src": "failed"}, 5)
        [event] = failure_events(zsession)
        assert event["node"] == "src" and event["daemon"] == "d1" and event["exit_code"] == 1
        assert "after 1 restart" in event["what"]
        assert any("the sensor is unplugged" in line for line in event["log"])
        out = subprocess.run([*zflow_cmd, "instance", "status", "f1", "--connect", router.endpoint],
                             env=cli_env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "node src failed on daemon d1 (exit 1" in out.stdout
        assert "the sensor is unplugged" in out.stdout
        delete_instance(zsession, "f1")


def test_node_hosts_reach_the_router_through_zflow_connect(router, zsession, tmp_path):
    ops = write_nodes(tmp_path / "ops")
    key = f"test/zflow-connect/{uuid.uuid4().hex}"
    got: queue.Queue[str] = queue.Queue()
    sub = zsession.declare_subscriber(key, lambda s: got.put(s.payload.to_string()))
    try:
        g = graph("own", [node("src", "source", str(ops), attr="own_session", outputs=["out"],
                               config={"key": key})], [])
        with in_process_daemons(router, tmp_path, "d1"):
            create_instance(zsession, g, instance="c1")
            assert got.get(timeout=20) == router.endpoint
            delete_instance(zsession, "c1")
    finally:
        sub.undeclare()
