"""``zflow daemon | instance | sched``: edge daemons, instances across them, the scheduler.

Every command except ``daemon run`` is a Zenoh client: it connects (``--connect``, default
``tcp/127.0.0.1:7447`` or ``$ZFLOW_CONNECT``), asks, prints, and closes its session.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any

from zflow import settings
from zflow.cli.args import positive_int, seconds


def _conn_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("zenoh")
    g.add_argument("--connect", action="append", metavar="ENDPOINT",
                   help="router/peer to connect to (default $ZFLOW_CONNECT or tcp/127.0.0.1:7447)")
    g.add_argument("--zenoh-config", metavar="FILE", help="a Zenoh JSON5 config (router_config/)")
    g.add_argument("--mode", choices=["client", "peer"], default=None)


def _session_options(args: argparse.Namespace) -> Any:
    from zflow.transport.session import SessionOptions

    connect = args.connect or settings.connect()
    if not connect and not args.zenoh_config:
        connect = ["tcp/127.0.0.1:7447"]
    return SessionOptions(mode=args.mode or "client", connect=connect, config_file=args.zenoh_config)


def _secret(args: argparse.Namespace) -> bytes | None:
    from zflow.transport.auth import load_secret

    return load_secret(getattr(args, "secret_file", None))


def _compile(args: argparse.Namespace, instance: str | None = None) -> Any:
    from zflow.dataflow import compile_file, parse_cli_vars

    return compile_file(args.flow, vars=parse_cli_vars(args.var or []), instance=instance)


# -- daemon ---------------------------------------------------------------------------------------
def cmd_daemon_run(args: argparse.Namespace) -> int:
    """Validate the config here, then exec the lean daemon (which never loads pydantic)."""
    from zflow.daemon.config import load_config
    from zflow.transport.auth import load_secret

    overrides = {"id": args.id, "site": args.site, "data_dir": args.data_dir, "token": args.token,
                 "token_file": args.token_file, "connect": args.connect, "listen": args.listen,
                 "config_file": args.zenoh_config, "mode": args.mode, "trusted_deployers": args.trust_deployer}
    if args.router:
        overrides["router"] = True
    if args.scheduler:
        overrides["scheduler"] = True
    identity = load_config(args.config, overrides).resolve()
    secret_file = os.path.abspath(args.secret_file) if args.secret_file else None
    load_secret(secret_file)  # a bad secret file is reported here, with exit code 2
    os.makedirs(identity.data_dir, exist_ok=True)
    resolved = os.path.join(identity.data_dir, "daemon.resolved.json")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(resolved)  # made afresh, readable by this user only: it holds the token
    with os.fdopen(os.open(resolved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        json.dump({"identity": identity.to_dict(), "echo": not args.quiet, "secret_file": secret_file,
                   "ready_file": os.path.abspath(args.ready_file) if args.ready_file else None}, fh)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "zflow.daemon", resolved])
    return 0  # not reached


def cmd_daemon_list(args: argparse.Namespace) -> int:
    from zflow.transport.auth import check_claim, new_nonce
    from zflow.transport.control_client import ControlClient
    from zflow.transport.session import open_session

    secret = _secret(args)
    nonce = new_nonce()
    with open_session(_session_options(args)) as s:
        statuses = ControlClient(s).statuses(nonce=nonce)
    if args.json:
        print(json.dumps(statuses, indent=2, default=str))
        return 0
    print(f"{'ID':<16} {'SITE':<10} {'ARCH':<8} {'CPU free':>9} {'MEM free':>9} {'NODES':>5}  TOKEN")
    for st in statuses:
        cpu = sum(p["cpu"] for p in st["pools"])
        mem = sum(p["memory"] for p in st["pools"]) / 2**20
        tok = ("open" if secret is None else (check_claim(secret, st["id"], st.get("token"), nonce) or "valid"))
        print(f"{st['id']:<16} {st['site'] or '-':<10} {st['arch']:<8} {cpu:>9.2f} {mem:>8.0f}M "
              f"{len(st['running']):>5}  {tok}")
    if not statuses:
        print("(no daemon answered)")
    return 0


def cmd_daemon_status(args: argparse.Namespace) -> int:
    from zflow.transport.control_client import ControlClient
    from zflow.transport.session import open_session

    with open_session(_session_options(args)) as s:
        st = ControlClient(s).status(args.daemon)
    st.pop("ok", None)
    print(json.dumps(st, indent=2, default=str))
    return 0


def cmd_daemon_logs(args: argparse.Namespace) -> int:
    from zflow.transport.control import LogsRequest
    from zflow.transport.control_client import ControlClient
    from zflow.transport.session import open_session

    with open_session(_session_options(args)) as s:
        ControlClient(s).status(args.daemon)  # a clear error for an unknown id
        lines = ControlClient(s).ask(args.daemon, LogsRequest(lines=args.lines))["lines"]
    print("\n".join(lines))
    return 0


def cmd_daemon_token(args: argparse.Namespace) -> int:
    from zflow.keyexprs import chunk
    from zflow.transport.auth import issue_token, load_secret

    secret = load_secret(args.secret_file)
    assert secret is not None
    print(issue_token(secret, chunk(args.id, "daemon id")))
    return 0


# -- deployer keys --------------------------------------------------------------------------------
def cmd_deployer_keygen(args: argparse.Namespace) -> int:
    from zflow.daemon.signing import keygen

    signer = keygen(args.out, force=args.force)
    print(f"wrote {signer.path}; list this public key in each daemon's trusted_deployers:", file=sys.stderr)
    print(signer.public)
    return 0


def cmd_deployer_pubkey(args: argparse.Namespace) -> int:
    from zflow.daemon.signing import load_signer

    print(load_signer(args.key, create=False).public)
    return 0


# -- instances ------------------------------------------------------------------------------------
def cmd_instance_create(args: argparse.Namespace) -> int:
    from zflow.daemon.instance_deploy import create_instance
    from zflow.daemon.signing import load_signer
    from zflow.transport.session import open_session

    graph = _compile(args, args.id)
    signer = load_signer(args.deployer_key)
    with open_session(_session_options(args)) as s:
        rec = create_instance(s, graph, instance=args.id, policy=args.policy,
                              on_daemon_loss=args.on_daemon_loss, secret=_secret(args),
                              start=not args.no_start, ready_timeout=args.timeout,
                              log=lambda m: print(m, file=sys.stderr), signer=signer)
    print(f"{rec.flow}/{rec.instance}")
    return 0


def _instance_action(name: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from zflow.daemon import instance_deploy as deploy
        from zflow.transport.session import open_session

        with open_session(_session_options(args)) as s:
            rec = getattr(deploy, f"{name}_instance")(s, args.instance)
        print(f"{name} {rec.flow}/{rec.instance}: ok")
        return 0

    return handler


def cmd_instance_status(args: argparse.Namespace) -> int:
    from zflow.daemon.instance_deploy import find_instance
    from zflow.daemon.state import health
    from zflow.transport.session import open_session

    with open_session(_session_options(args)) as s:
        rec, states, daemons = find_instance(s, args.instance)
    state, down = health(rec, states)
    if args.json:
        print(json.dumps({"record": {k: v for k, v in rec.to_dict().items() if k != "graph"},
                          "health": state, "down": down, "nodes": states, "daemons": daemons}, indent=2))
        return 0
    print(f"instance {rec.flow}/{rec.instance}  health {state}  state {rec.state}  generation {rec.generation}  "
          f"revision {rec.revision}  policy {rec.policy}  on daemon loss: {rec.on_daemon_loss}")
    if down:
        print(f"  not running: {', '.join(down)}")
    print(f"  {'NODE':<24} {'DAEMON/POOL':<28} STATE")
    for node in sorted(rec.placement):
        print(f"  {node:<24} {rec.placement[node]:<28} {states.get(node, 'not running')}")
    print("events:")
    for ev in rec.events:
        print(f"  {time.strftime('%H:%M:%S', time.localtime(ev['time']))} {ev['what']}")
        for line in ev.get("log", []):
            print(f"      | {line}")
    return 0


def cmd_instance_list(args: argparse.Namespace) -> int:
    from zflow.daemon.instance_deploy import list_instances
    from zflow.transport.session import open_session

    with open_session(_session_options(args)) as s:
        items = list_instances(s)
    for i in items:
        print(f"{i['flow'] + '/' + i['instance']:<28} {i['health']:<9} generation {i['generation']:<3} "
              f"daemons: {', '.join(i['daemons'])}")
    if not items:
        print("(no instances)")
    return 0


# -- scheduler ------------------------------------------------------------------------------------
def cmd_sched_serve(args: argparse.Namespace) -> int:
    from zflow.process import StopSignal
    from zflow.scheduler.service import SchedulerService
    from zflow.transport.session import open_session

    stop = StopSignal().install()
    with open_session(_session_options(args)) as s:
        svc = SchedulerService(s, _secret(args))
        print("scheduler ready", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            svc.close()
    return 0


def _is_workflow(path: str) -> bool:
    """A Ryax workflow file (``kind: Workflows``) rather than a dataflow descriptor."""
    from zflow.documents import load_document

    try:
        data = load_document(path).data
    except Exception:  # the dataflow compiler reports unreadable files with its own errors
        return False
    return isinstance(data, dict) and data.get("kind") == "Workflows"


def cmd_sched_explain(args: argparse.Namespace) -> int:
    from zflow.scheduler.planning import PlacementPlan, place_graph
    from zflow.transport.session import open_session

    if _is_workflow(args.flow):
        from zflow.workflows.deploy import explain_lines, plan_workflow
        from zflow.workflows.workflow import load_workflow

        wf = load_workflow(args.flow)
        with open_session(_session_options(args)) as s:
            plan = plan_workflow(s, wf, policy=args.policy, secret=_secret(args), explain=True)
        print("\n".join(explain_lines(plan, args.policy)))
        return 1 if plan.unplaced() else 0
    graph = _compile(args)
    with open_session(_session_options(args)) as s:
        placed = place_graph(s, graph, PlacementPlan(policy=args.policy, secret=_secret(args), explain=True))
    answer = placed.answer
    where = "locally (no scheduler queryable answered)" if answer.get("local") else "by the scheduler service"
    print(f"placement of {graph.flow} ({len(graph.nodes)} nodes, policy {args.policy}) decided {where}; "
          f"daemons: {', '.join(answer.get('daemons', [])) or 'none'}")
    print("\n".join(placed.lines()))
    return 1 if placed.unplaced() else 0


def register(sub: argparse._SubParsersAction) -> None:
    from zflow.daemon.state import ON_LOSS

    d = sub.add_parser("daemon", help="run an edge daemon, list and inspect daemons")
    dsub = d.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    run = dsub.add_parser("run", help="run this machine's daemon (long-running)")
    run.add_argument("--config", help="daemon YAML (identity, capacity, pools); unset fields are detected")
    run.add_argument("--id")
    run.add_argument("--site")
    run.add_argument("--data-dir")
    run.add_argument("--token", help="bootstrap token (or token_file in the config, or $ZFLOW_TOKEN)")
    run.add_argument("--token-file")
    run.add_argument("--router", action="store_true", help="be the Zenoh router for this site")
    run.add_argument("--listen", action="append", metavar="ENDPOINT")
    run.add_argument("--scheduler", action="store_true", help="also serve the scheduler queryable")
    run.add_argument("--secret-file", help="cluster secret (for the embedded scheduler's token checks)")
    run.add_argument("--trust-deployer", action="append", metavar="KEY",
                     help="a deployer public key (ed25519:..., or a file) whose signed instances run here; "
                          "default: this user's own deployer key")
    run.add_argument("--ready-file", help=argparse.SUPPRESS)
    run.add_argument("--quiet", action="store_true", help="do not echo logs to stderr")
    _conn_args(run)
    run.set_defaults(handler=cmd_daemon_run)
    for name, fn, helptext in (("list", cmd_daemon_list, "daemons that answer, with free capacity"),
                               ("status", cmd_daemon_status, "one daemon's full status"),
                               ("logs", cmd_daemon_logs, "recent log lines of a daemon")):
        p = dsub.add_parser(name, help=helptext)
        if name != "list":
            p.add_argument("daemon")
        if name == "logs":
            p.add_argument("-n", "--lines", type=positive_int, default=200)
        if name == "list":
            p.add_argument("--json", action="store_true")
            p.add_argument("--secret-file", help="check each daemon's bootstrap token")
        _conn_args(p)
        p.set_defaults(handler=fn)
    tok = dsub.add_parser("token", help="issue a bootstrap token for a daemon id")
    tok.add_argument("--id", required=True)
    tok.add_argument("--secret-file", required=True)
    tok.set_defaults(handler=cmd_daemon_token)

    dep = sub.add_parser("deployer", help="the key that signs what daemons may run")
    depsub = dep.add_subparsers(dest="deployer_command", metavar="ACTION", required=True)
    kg = depsub.add_parser("keygen", help="make a deployer key pair; prints the public key")
    kg.add_argument("--out", metavar="FILE", help="private key file (default ~/.config/zflow/deployer.key)")
    kg.add_argument("--force", action="store_true", help="replace an existing key")
    kg.set_defaults(handler=cmd_deployer_keygen)
    pk = depsub.add_parser("pubkey", help="print the public key of a deployer key")
    pk.add_argument("--key", metavar="FILE", help="private key file (default ~/.config/zflow/deployer.key)")
    pk.set_defaults(handler=cmd_deployer_pubkey)

    i = sub.add_parser("instance", help="create and manage flow instances across daemons")
    isub = i.add_subparsers(dest="instance_command", metavar="ACTION", required=True)
    c = isub.add_parser("create", help="place, ship, load and start a flow on the daemons")
    c.add_argument("flow", help="dataflow descriptor (YAML)")
    c.add_argument("--id", help="instance id (default: generated)")
    c.add_argument("--var", action="append", metavar="NAME=VALUE")
    c.add_argument("--policy", default="weighted", help="placement policy (weighted, spread, pack)")
    c.add_argument("--on-daemon-loss", choices=ON_LOSS, default="replace")
    c.add_argument("--no-start", action="store_true", help="load only; start later with `instance start`")
    c.add_argument("--secret-file", help="cluster secret: only daemons with a valid token get work")
    c.add_argument("--timeout", type=seconds, default=60.0, help="seconds to wait for every node to be ready")
    c.add_argument("--deployer-key", metavar="FILE",
                   help="private key that signs the instance (default $ZFLOW_DEPLOYER_KEY or "
                        "~/.config/zflow/deployer.key, made on first use)")
    _conn_args(c)
    c.set_defaults(handler=cmd_instance_create)
    for name in ("start", "stop", "delete"):
        p = isub.add_parser(name, help=f"{name} an instance on every daemon involved")
        p.add_argument("instance", help="FLOW/INSTANCE or a unique instance id")
        _conn_args(p)
        p.set_defaults(handler=_instance_action(name))
    st = isub.add_parser("status", help="placement, node states and events of an instance")
    st.add_argument("instance")
    st.add_argument("--json", action="store_true")
    _conn_args(st)
    st.set_defaults(handler=cmd_instance_status)
    ls = isub.add_parser("list", help="instances known to the reachable daemons")
    _conn_args(ls)
    ls.set_defaults(handler=cmd_instance_list)

    s = sub.add_parser("sched", help="the placement scheduler")
    ssub = s.add_subparsers(dest="sched_command", metavar="ACTION", required=True)
    serve = ssub.add_parser("serve", help="serve the scheduler queryable (zflow/ctl/sched/place)")
    serve.add_argument("--secret-file", help="cluster secret: daemons without a valid token get no work")
    _conn_args(serve)
    serve.set_defaults(handler=cmd_sched_serve)
    ex = ssub.add_parser("explain", help="where each node of a flow (or step of a workflow) would go, "
                                        "and why not elsewhere")
    ex.add_argument("flow", help="a dataflow descriptor or a Ryax workflow file")
    ex.add_argument("--var", action="append", metavar="NAME=VALUE")
    ex.add_argument("--policy", default="weighted")
    ex.add_argument("--secret-file")
    _conn_args(ex)
    ex.set_defaults(handler=cmd_sched_explain)
