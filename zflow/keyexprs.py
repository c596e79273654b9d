"""The one module that owns Zenoh key expressions. Nothing else formats keys by hand.

Layout (see DESIGN.md):

- data plane            ``zflow/data/{flow}/{instance}/{node}/{output}``
- end-of-stream marks   ``zflow/eos/{flow}/{instance}/{node}/{output}``; a consumer's receipt
                        ``.../{consumer}/{port}``, its ``block`` credits ``.../{consumer}/{port}/credit``,
                        a restarted consumer's replay ``.../{consumer}/{port}/replay``
- instance control      ``zflow/ctl/instance/{flow}/{instance}/...``
- node statistics       ``zflow/ctl/instance/{flow}/{instance}/stats/{node}`` (queryable and final put)
- daemon control        ``zflow/ctl/daemon/{daemon_id}/...``
- scheduler             ``zflow/ctl/sched/...``
- code bundles          ``zflow/ctl/bundle/{sha256}``
- instance records      ``zflow/ctl/records/{flow}/{instance}`` (replicated by every daemon)
- node checkpoints      ``zflow/ctl/checkpoint/{flow}/{instance}/{node}`` (replicated by every daemon)
- liveliness            ``zflow/alive/daemon/{daemon_id}``, ``zflow/alive/node/{flow}/{instance}/{node}``,
                        ``zflow/alive/runner/{workflow}/{runner_id}`` (a ``zflow workflow run``),
                        ``zflow/alive/storage/{kind}/{pid}`` (a storage process, e.g. ``runs``)
- time-series store     ``zflow/tsdb/{dataset}/...``; fragment locations ``zflow/tsdb/_loc/{location}/...``
- workflow runs         ``zflow/runs/{workflow}/{run_id}``
- builds                ``zflow/build/action/{req|status|result}/{id}``; builders ``zflow/alive/builder/{id}``
"""

from __future__ import annotations

import re

from zflow.errors import UserError

ROOT = "zflow"
_CHUNK = re.compile(r"^[A-Za-z0-9_.\-]+$")


def chunk(value: str, what: str = "name") -> str:
    """Check one key chunk: no '/', no wildcards, no Zenoh-reserved '@' prefix."""
    text = str(value)
    if not _CHUNK.match(text) or text.startswith("@"):
        raise UserError(
            f"{what} {text!r} cannot be used in a Zenoh key expression: "
            "expected letters, digits, '_', '-' or '.' (no '/', '*', '$', '?', '#', '@')"
        )
    return text


def _join(*parts: str) -> str:
    return "/".join(parts)


# ---- data plane -------------------------------------------------------------------------------
def data(flow: str, instance: str, node: str, output: str) -> str:
    return _join(ROOT, "data", chunk(flow, "flow"), chunk(instance, "instance"), chunk(node, "node"),
                 chunk(output, "output"))


def eos(flow: str, instance: str, node: str, output: str) -> str:
    return _join(ROOT, "eos", chunk(flow, "flow"), chunk(instance, "instance"), chunk(node, "node"),
                 chunk(output, "output"))


def eos_ack(flow: str, instance: str, node: str, output: str, consumer: str, port: str) -> str:
    """A consumer's receipt for an output's end of stream: the producer may now close."""
    return _join(eos(flow, instance, node, output), chunk(consumer, "node"), chunk(port, "input"))


def eos_acks(flow: str, instance: str) -> str:
    return _join(ROOT, "eos", chunk(flow, "flow"), chunk(instance, "instance"), "**")


def credit(flow: str, instance: str, node: str, output: str, consumer: str, port: str) -> str:
    """A ``block`` consumer's credit: how many messages of the output it has taken so far."""
    return _join(eos_ack(flow, instance, node, output, consumer, port), "credit")


def replay(flow: str, instance: str, node: str, output: str, consumer: str, port: str) -> str:
    """Where a ``block`` producer re-sends, to a restarted consumer only, what its predecessor
    had not finished; a DELETE there ends the replay."""
    return _join(eos_ack(flow, instance, node, output, consumer, port), "replay")


def parse_credit(key: str) -> tuple[str, str, str, str] | None:
    """(node, output, consumer, port) of a :func:`credit` key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 9 or parts[:2] != [ROOT, "eos"] or parts[8] != "credit":
        return None
    return parts[4], parts[5], parts[6], parts[7]


def parse_eos_ack(key: str) -> tuple[str, str, str, str] | None:
    """(node, output, consumer, port) of an :func:`eos_ack` key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 8 or parts[:2] != [ROOT, "eos"]:
        return None
    return parts[4], parts[5], parts[6], parts[7]


# ---- instance control ---------------------------------------------------------------------------
def instance_ctl(flow: str, instance: str, *rest: str) -> str:
    return _join(ROOT, "ctl", "instance", chunk(flow, "flow"), chunk(instance, "instance"), *rest)


def parse_node_alive(key: str) -> str | None:
    """The node of a :func:`node_alive` key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 6 or parts[:3] != [ROOT, "alive", "node"]:
        return None
    return parts[5]


def node_stats(flow: str, instance: str, node: str = "*") -> str:
    """A node's statistics (messages in/out, drops per input, queue depth): a queryable while
    the node runs, and one last put when its host ends."""
    return instance_ctl(flow, instance, "stats", node if node == "*" else chunk(node, "node"))


def parse_node_stats(key: str) -> tuple[str, str, str] | None:
    """(flow, instance, node) of a :func:`node_stats` key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 7 or parts[:3] != [ROOT, "ctl", "instance"] or parts[5] != "stats":
        return None
    return parts[3], parts[4], parts[6]


def node_alive(flow: str, instance: str, node: str = "*") -> str:
    return _join(ROOT, "alive", "node", chunk(flow, "flow"), chunk(instance, "instance"),
                 node if node == "*" else chunk(node, "node"))


# ---- daemons and scheduler ----------------------------------------------------------------------
def daemon_ctl(daemon_id: str, *rest: str) -> str:
    return _join(ROOT, "ctl", "daemon", daemon_id if daemon_id == "*" else chunk(daemon_id, "daemon id"),
                 *rest)


def daemon_alive(daemon_id: str = "*") -> str:
    return _join(ROOT, "alive", "daemon", daemon_id if daemon_id == "*" else chunk(daemon_id, "daemon id"))


def parse_daemon_ctl(key: str) -> tuple[str, str] | None:
    """``(daemon id or '*', verb)`` of a daemon control key (verb ``instances/load``: its chunks
    joined by '/'), None for any other key."""
    parts = str(key).split("/", 4)
    if len(parts) != 5 or parts[:3] != [ROOT, "ctl", "daemon"]:
        return None
    return parts[3], parts[4]


def parse_daemon_alive(key: str) -> str | None:
    """The daemon id of a daemon liveliness key, None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 4 or parts[:3] != [ROOT, "alive", "daemon"]:
        return None
    return parts[3]


def instance_record(flow: str = "*", instance: str = "*") -> str:
    """An instance record in the daemons' replicated storage (``*`` in a selector for all)."""
    return _join(ROOT, "ctl", "records", flow if flow == "*" else chunk(flow, "flow"),
                 instance if instance == "*" else chunk(instance, "instance"))


def parse_instance_record(key: str) -> tuple[str, str] | None:
    """``(flow, instance)`` of an instance record key, None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 5 or parts[:3] != [ROOT, "ctl", "records"]:
        return None
    return parts[3], parts[4]


def checkpoint(flow: str = "*", instance: str = "*", node: str = "*") -> str:
    """A node's checkpoint (e.g. a timer's next tick), kept by the daemons' replicated storage."""
    return _join(ROOT, "ctl", "checkpoint", flow if flow == "*" else chunk(flow, "flow"),
                 instance if instance == "*" else chunk(instance, "instance"),
                 node if node == "*" else chunk(node, "node"))


def parse_checkpoint(key: str) -> tuple[str, str, str] | None:
    """``(flow, instance, node)`` of a checkpoint key, None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 6 or parts[:3] != [ROOT, "ctl", "checkpoint"]:
        return None
    return parts[3], parts[4], parts[5]


def sched(*rest: str) -> str:
    return _join(ROOT, "ctl", "sched", *rest)


def bundle(digest: str) -> str:
    """Operator code bundles, content-addressed by sha256 (``*`` for a serving queryable)."""
    return _join(ROOT, "ctl", "bundle", digest if digest == "*" else chunk(digest, "bundle digest"))


def parse_bundle(key: str) -> str | None:
    """The digest a bundle key asks for, None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 4 or parts[:3] != [ROOT, "ctl", "bundle"]:
        return None
    return parts[3]


# ---- storage, runs, builds ----------------------------------------------------------------------
def tsdb(dataset: str, *rest: str) -> str:
    if dataset == "_loc":
        raise UserError("dataset name '_loc' is reserved for fragment locations (zflow/tsdb/_loc/...)")
    return _join(ROOT, "tsdb", chunk(dataset, "dataset"), *rest)


def tsdb_location(location: str, *rest: str) -> str:
    """A Zenoh fragment location: ``zflow/tsdb/_loc/{location}/...`` (``@`` is reserved by Zenoh).

    ``_loc`` is therefore not usable as a dataset name.
    """
    return _join(ROOT, "tsdb", "_loc", chunk(location, "location"), *rest)


def tsdb_fragment(location: str, key: str) -> str:
    """The key of fragment ``key`` (``a/b/c``) at Zenoh location ``location``."""
    return tsdb_location(location, "f", *(chunk(part, "fragment key chunk") for part in key.split("/")))


def runs(workflow: str, run_id: str = "*") -> str:
    """A run record (``*`` for the workflow selects one run id across every workflow)."""
    return _join(ROOT, "runs", workflow if workflow in ("*", "**") else chunk(workflow, "workflow"),
                 run_id if run_id in ("*", "**") else chunk(run_id, "run id"))


def parse_runs(key: str) -> tuple[str, str] | None:
    """(workflow, run id) of a :func:`runs` key or selector (``**`` alone: every run), or None."""
    parts = str(key).split("/")
    if parts[:2] != [ROOT, "runs"]:
        return None
    if len(parts) == 4:
        return parts[2], parts[3]
    if parts[2:] == ["**"]:
        return "**", "**"
    return None


def build(*rest: str) -> str:
    return _join(ROOT, "build", *rest)


BUILD_KINDS = ("req", "status", "result")


def build_action(kind: str, build_id: str = "*") -> str:
    """A builder operator's keys: requests, progress and results of one build (``*``: all)."""
    if kind not in BUILD_KINDS:
        raise ValueError(f"build key kind must be one of {BUILD_KINDS}, got {kind!r}")
    return build("action", kind, build_id if build_id == "*" else chunk(build_id, "build id"))


def parse_build_action(key: str) -> tuple[str, str]:
    """``zflow/build/action/{kind}/{id}`` -> (kind, id); anything else is a UserError."""
    parts = str(key).split("/")
    if len(parts) != 5 or parts[:3] != [ROOT, "build", "action"] or parts[3] not in BUILD_KINDS:
        raise UserError(f"{key!r} is not a build key (expected {ROOT}/build/action/{{req|status|result}}/ID)")
    return parts[3], chunk(parts[4], "build id")


def builder_alive(builder_id: str = "*") -> str:
    return _join(ROOT, "alive", "builder", builder_id if builder_id == "*" else chunk(builder_id, "builder id"))


def run_event(workflow: str, run_id: str = "*", step: str = "*") -> str:
    """Step events of workflow runs, folded into run records by the runs storage."""
    return _join(ROOT, "runlog", chunk(workflow, "workflow") if workflow not in ("*", "**") else workflow,
                 run_id if run_id in ("*", "**") else chunk(run_id, "run id"),
                 step if step == "*" else chunk(step, "step"))


def runner_alive(workflow: str = "*", runner: str = "*") -> str:
    """Liveliness token of a workflow runner: its runs' records outlive it only as long as it lives."""
    return _join(ROOT, "alive", "runner", workflow if workflow in ("*", "**") else chunk(workflow, "workflow"),
                 runner if runner == "*" else chunk(runner, "runner id"))


def parse_runner_alive(key: str) -> tuple[str, str] | None:
    """(workflow, runner id) of a :func:`runner_alive` key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 5 or parts[:3] != [ROOT, "alive", "runner"]:
        return None
    return parts[3], parts[4]


def storage_alive(kind: str, ident: str = "*") -> str:
    """Liveliness token of a storage process (``kind`` e.g. ``runs``): declared once it serves,
    so whoever started it knows it is ready without reading its log."""
    return _join(ROOT, "alive", "storage", chunk(kind, "storage kind"), ident if ident == "*" else chunk(ident, "storage id"))


def run_records(workflow: str = "*") -> str:
    """Selector for every run record (of one workflow, or of all with ``*``)."""
    return _join(ROOT, "runs", workflow if workflow in ("*", "**") else chunk(workflow, "workflow"), "*")


def blob(store: str, digest: str = "*") -> str:
    """Content-addressed file blobs in a site's store (or the ``global`` store)."""
    return _join(ROOT, "blobs", store if store == "*" else chunk(store, "store"),
                 digest if digest == "*" else chunk(digest, "digest"))


def parse_blob(key: str) -> tuple[str, str] | None:
    """(store, digest) of a :func:`blob` key, or None for any other key."""
    parts = str(key).split("/")
    if len(parts) != 4 or parts[:2] != [ROOT, "blobs"]:
        return None
    return parts[2], parts[3]


def activator(workflow: str, instance: str, step: str, *rest: str) -> str:
    """The scale-to-zero activator of an on-demand workflow step (pending messages, acks)."""
    return instance_ctl(workflow, instance, "activator", chunk(step, "step"), *rest)


# ---- user-written key expressions -----------------------------------------------------------------
_USER_CHUNK = re.compile(r"^(\*|\*\*|(?:[^*$#?/]|\$\*)+)$")


def user_key_error(text: str) -> str | None:
    """Why ``text`` is not a valid Zenoh key expression (None when it is).

    A syntax check done without Zenoh (descriptor checks run on machines without a router):
    non-empty chunks, no '#' or '?', '*'/'**' alone in a chunk or '$*' inside one.
    """
    key = str(text)
    if not key:
        return "empty key expression"
    if key.startswith("/") or key.endswith("/"):
        return f"key expression {key!r} cannot start or end with '/'"
    for part in key.split("/"):
        if not part:
            return f"key expression {key!r} has an empty chunk ('//')"
        if not _USER_CHUNK.match(part):
            return (f"key expression {key!r}: bad chunk {part!r} "
                    "(no '#' or '?'; '*' and '**' stand alone in a chunk, '$*' inside one)")
    return None
