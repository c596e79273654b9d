"""``zflow action ...`` and ``zflow workflow ...``: Ryax-compatible actions and workflows."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zflow import keyexprs, process, settings
from zflow.cli.args import positive_int, seconds
from zflow.errors import Problem, RuntimeFailure, UserError

DEFAULT_STATE = settings.state_dir()


def register(sub: argparse._SubParsersAction) -> None:
    _register_action(sub)
    _register_workflow(sub)


# ---- zflow action --------------------------------------------------------------------------------
def _register_action(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("action", help="Ryax-format actions: check, list, schema")
    asub = p.add_subparsers(dest="action_cmd", metavar="SUBCOMMAND")
    c = asub.add_parser("check", help="validate action directories (ryax_metadata.yaml + handler)")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.set_defaults(handler=_action_check)
    ls = asub.add_parser("list", help="list the actions found in the library folders")
    ls.add_argument("--path", action="append", default=[], help="extra action folder")
    ls.set_defaults(handler=_action_list)
    sc = asub.add_parser("schema", help="export JSON Schemas of action metadata and workflows")
    sc.add_argument("--out", default="descriptors", help="output folder (default: descriptors/)")
    sc.set_defaults(handler=_schema)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _action_check(args: argparse.Namespace) -> int:
    from zflow.workflows.action import load_action

    problems: list[Problem] = []
    for d in args.dirs:
        try:
            a = load_action(d)
        except UserError as exc:
            problems += exc.problems
            continue
        print(f"ok: {a.id} {a.version} ({a.kind}, {a.spec.type}) - {len(a.spec.inputs)} inputs, "
              f"{len(a.spec.outputs)} outputs")
    if problems:
        raise UserError(problems)
    return 0


def _action_list(args: argparse.Namespace) -> int:
    from zflow.workflows.library import Library, search_path

    lib = Library(search_path(args.path))
    for a in sorted(lib.all(), key=lambda a: (a.id, a.version)):
        print(f"{a.id:<20} {a.version:<8} {a.kind:<10} {a.spec.human_name}  [{a.directory}]")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from zflow.documents import dump_schema
    from zflow.workflows.action import ActionMetadata
    from zflow.workflows.workflow import WorkflowFile

    out = Path(args.out)
    dump_schema(ActionMetadata, out / "ryax_metadata.schema.json")
    dump_schema(WorkflowFile, out / "workflow.schema.json")
    print(f"wrote {out / 'ryax_metadata.schema.json'} and {out / 'workflow.schema.json'}")
    return 0


# ---- zflow workflow ------------------------------------------------------------------------------
def _zenoh_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                   help="Zenoh endpoint (default: an embedded router for this command)")


def _register_workflow(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workflow", help="Ryax-style workflows: check, compile, run, runs")
    wsub = p.add_subparsers(dest="workflow_cmd", metavar="SUBCOMMAND")
    from zflow.cli.build import register_workflow as register_build  # zflow workflow build

    register_build(wsub)

    c = wsub.add_parser("check", help="validate a workflow file and its actions")
    c.add_argument("file")
    c.set_defaults(handler=_wf_check)

    comp = wsub.add_parser("compile", help="print the zflow dataflow a workflow compiles to (YAML)")
    comp.add_argument("file")
    comp.add_argument("-o", "--output", help="write to a file instead of stdout")
    comp.add_argument("--site", default="local", help="site of steps without a site constraint")
    comp.add_argument("--graph", action="store_true", help="print the compiled graph (JSON) instead")
    comp.set_defaults(handler=_wf_compile)

    r = wsub.add_parser("run", help="run a workflow until N runs finish, a duration, or Ctrl-C")
    r.add_argument("file")
    _zenoh_args(r)
    r.add_argument("--runs", type=positive_int, help="stop the trigger after N runs and wait for them")
    r.add_argument("--duration", type=seconds, help="run for this many seconds")
    r.add_argument("--state-dir", default=str(DEFAULT_STATE), help="runs, blobs and caches")
    r.add_argument("--site", default="local", help="this machine's site")
    r.add_argument("--no-storage", action="store_true", help="use a runs storage already on the network")
    r.add_argument("--json", action="store_true", help="print the finished run records as JSON")
    r.add_argument("--timeout", type=seconds, default=300.0,
                   help="with --runs: seconds to wait for them (default 300)")
    r.set_defaults(handler=_wf_run)

    d = wsub.add_parser("deploy", help="run a workflow in the background (until undeploy): a local "
                                       "runner, or with --daemons an instance across the running daemons")
    d.add_argument("file")
    _zenoh_args(d)
    d.add_argument("--state-dir", default=str(DEFAULT_STATE))
    d.add_argument("--site", default="local", help="without --daemons: this machine's site")
    d.add_argument("--daemons", action="store_true",
                   help="place the steps with the scheduler and run them on the daemons (needs --connect)")
    d.add_argument("--id", default="main", help="with --daemons: the instance id (default: main)")
    d.add_argument("--policy", default="weighted", help="with --daemons: the placement policy")
    d.add_argument("--secret-file", help="with --daemons: cluster secret (daemons without a valid token get no work)")
    d.add_argument("--no-storage", action="store_true",
                   help="with --daemons: do not start a runs storage (one is already on the network)")
    d.add_argument("--timeout", type=seconds, default=60.0, help="with --daemons: seconds for the steps to be ready")
    d.set_defaults(handler=_wf_deploy)

    u = wsub.add_parser("undeploy", help="stop a deployed workflow (deletes its instance on the daemons)")
    u.add_argument("name", help="workflow name (spec.id or file name)")
    u.add_argument("--state-dir", default=str(DEFAULT_STATE))
    u.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                   help="for a --daemons deployment: Zenoh endpoint (default: the one used to deploy)")
    u.set_defaults(handler=_wf_undeploy)

    ex = wsub.add_parser("explain", help="where the scheduler would place each step, and why not elsewhere")
    ex.add_argument("file")
    _zenoh_args(ex)
    ex.add_argument("--policy", default="weighted")
    ex.add_argument("--secret-file")
    ex.set_defaults(handler=_wf_explain)

    st = wsub.add_parser("storage", help="run the runs storage (and blob stores) on a Zenoh network")
    _zenoh_args(st)
    st.add_argument("--dir", required=True, help="folder the records and blobs persist to")
    st.add_argument("--blobs", action="append", default=[], metavar="STORE",
                    help="also serve this blob store (a site name, or 'global')")
    st.set_defaults(handler=_wf_storage)

    for name, fn, helptext in (("runs", _wf_runs, "list run records"),
                               ("run-show", _wf_run_show, "show one run record"),
                               ("logs", _wf_logs, "print the logs of a run's steps")):
        q = wsub.add_parser(name, help=helptext)
        if name == "runs":
            q.add_argument("workflow", nargs="?", default="*")
        else:
            q.add_argument("run_id")
            q.add_argument("--workflow", default="*")
        if name == "logs":
            q.add_argument("--step")
        _zenoh_args(q)
        q.add_argument("--store", help="read records from this runs folder")
        q.add_argument("--state-dir", default=str(DEFAULT_STATE),
                       help="without --connect or --store: read the runs kept under this folder")
        q.add_argument("--json", action="store_true")
        q.set_defaults(handler=fn)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _wf_check(args: argparse.Namespace) -> int:
    from zflow.workflows.workflow import load_workflow

    wf = load_workflow(args.file)
    steps = ", ".join(f"{s.id} ({s.action.id} {s.kind})" for s in wf.steps.values())
    print(f"ok: workflow {wf.name}: {len(wf.steps)} steps: {steps}")
    return 0


def _wf_compile(args: argparse.Namespace) -> int:
    import yaml

    from zflow.workflows.workflow import load_workflow
    from zflow.workflows.workflow_compiler import to_dataflow, to_graph

    wf = load_workflow(args.file)
    if args.graph:
        text = json.dumps(to_graph(wf, default_site=args.site).to_dict(), indent=2)
    else:
        text = yaml.safe_dump(to_dataflow(wf, args.site), sort_keys=False)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _summary_line(r: dict[str, Any]) -> str:
    dur = f"{r['duration'] * 1000:.1f} ms" if r.get("duration") is not None else "-"
    err = f"  {r['error']}" if r.get("error") else ""
    return f"{r['run']}  {r['status']:<9} {dur:>10}{err}"


def _wf_run(args: argparse.Namespace) -> int:
    """Exit code 0 only when every finished run completed, 1 when one did not; Ctrl-C is 130.
    Runs still in flight when it stops (--duration, Ctrl-C) are canceled and said so."""
    from zflow.workflows.runs import COMPLETED
    from zflow.workflows.workflow import load_workflow
    from zflow.workflows.workflow_runner import WorkflowRunner

    wf = load_workflow(args.file)
    runner = WorkflowRunner(wf, Path(args.state_dir) / "workflows" / wf.name, connect=args.connect,
                            site=args.site, max_runs=args.runs, storage=not args.no_storage)
    interrupted = False
    try:
        runner.start()
        print(f"workflow {wf.name} running ({len(wf.steps)} steps); Ctrl-C to stop", file=sys.stderr)
        records = runner.wait(runs=args.runs, duration=args.duration,
                              timeout=None if args.duration else args.timeout)
    except KeyboardInterrupt:
        interrupted = True
        records = [runner.records[r] for r in runner.finished]
    finally:
        runner.stop()
    if args.json:
        print(json.dumps(records, indent=2, default=str))
    else:
        for r in records:
            print(_summary_line(r))
        counts: dict[str, int] = {}
        for r in records:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(f"{len(records)} runs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if runner.canceled:
        print(f"zflow: {len(runner.canceled)} run(s) in flight were canceled by the stop", file=sys.stderr)
    failed = [r for r in records if r["status"] != COMPLETED]
    if failed:  # the exit code says whether every run succeeded
        print(f"zflow: {len(failed)} of {len(records)} runs did not complete "
              f"({', '.join(sorted({r['status'] for r in failed}))})", file=sys.stderr)
    return 130 if interrupted else 1 if failed else 0


def _deploy_file(state_dir: str, name: str) -> Path:
    return Path(state_dir) / "deployed" / f"{name}.json"


def _wf_deploy(args: argparse.Namespace) -> int:
    from zflow.workflows.workflow import load_workflow

    wf = load_workflow(args.file)
    info_file = _deploy_file(args.state_dir, wf.name)
    if info_file.exists():
        info = json.loads(info_file.read_text())
        if info.get("mode") == "daemons":
            raise UserError(f"workflow {wf.name} is already deployed on daemons (instance {wf.name}/"
                            f"{info['instance']}); undeploy it first")
        if process.alive(info["pid"]):
            raise UserError(f"workflow {wf.name} is already deployed (pid {info['pid']}); undeploy it first")
    info_file.parent.mkdir(parents=True, exist_ok=True)
    if args.daemons:
        return _deploy_on_daemons(args, wf, info_file)
    log = info_file.parent / f"{wf.name}.log"
    cmd = [sys.executable, "-m", "zflow", "workflow", "run", str(Path(args.file).resolve()),
           "--state-dir", args.state_dir, "--site", args.site, "--duration", str(10 * 365 * 86400)]
    for c in args.connect:
        cmd += ["--connect", c]
    proc = process.spawn_detached(cmd, log)
    info_file.write_text(json.dumps({"pid": proc.pid, "file": str(Path(args.file).resolve()),
                                     "started": time.time()}))
    print(f"deployed {wf.name} (pid {proc.pid}); logs in {log}")
    return 0


def _daemon_connect(connect: list[str]) -> list[str]:
    """Daemon deployments talk to an existing network: --connect, $ZFLOW_CONNECT or the default router."""
    return connect or settings.connect_or_default()


def _start_storage(session: Any, connect: list[str], directory: Path, blobs: list[str], log_file: Path,
                   timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """A detached ``zflow workflow storage`` (runs and blob stores), returned once its liveliness
    token says it serves."""
    cmd = [sys.executable, "-m", "zflow", "workflow", "storage", "--dir", str(directory)]
    for c in connect:
        cmd += ["--connect", c]
    for b in blobs:
        cmd += ["--blobs", b]
    proc = process.spawn_detached(cmd, log_file)
    if process.wait_alive(session, keyexprs.storage_alive("runs", str(proc.pid)), timeout, proc):
        return proc
    process.kill_group(proc.pid)
    proc.wait()
    raise RuntimeFailure(f"the runs storage did not start (see {log_file})")


def _deploy_on_daemons(args: argparse.Namespace, wf: Any, info_file: Path) -> int:
    from zflow.transport.auth import load_secret
    from zflow.transport.session import SessionOptions, open_session
    from zflow.workflows.deploy import deploy_workflow, placeable_plan
    from zflow.workflows.files import GLOBAL

    connect = _daemon_connect(args.connect)
    secret = load_secret(args.secret_file)
    storage = None
    with open_session(SessionOptions(mode="client", connect=connect)) as session:
        plan = placeable_plan(session, wf, args.id, args.policy, secret)
        if not args.no_storage:  # recording starts before the first run can happen
            storage = _start_storage(session, connect, Path(args.state_dir) / "workflows" / wf.name,
                                     sorted({GLOBAL, *plan.sites.values()}), info_file.with_suffix(".storage.log"))
        try:
            rec, plan = deploy_workflow(session, wf, args.id, args.policy, secret, ready_timeout=args.timeout,
                                        log=lambda m: print(m, file=sys.stderr), plan=plan)
        except BaseException:
            if storage is not None:
                process.stop_pid(storage.pid)
            raise
    info_file.write_text(json.dumps({"mode": "daemons", "instance": rec.instance, "connect": connect,
                                     "storage_pid": storage.pid if storage else None,
                                     "file": str(Path(args.file).resolve()), "started": time.time()}))
    where = ", ".join(f"{s}@{p} ({plan.sites[s]})" for s, p in sorted(plan.pools.items()))
    print(f"deployed {wf.name} as instance {rec.flow}/{rec.instance} on daemons: {where}")
    if storage is not None:
        print(f"runs storage pid {storage.pid}, records in {Path(args.state_dir) / 'workflows' / wf.name}")
    return 0


def _wf_undeploy(args: argparse.Namespace) -> int:
    info_file = _deploy_file(args.state_dir, args.name)
    if not info_file.exists():
        raise UserError(f"workflow {args.name} is not deployed (no {info_file})")
    info = json.loads(info_file.read_text())
    if info.get("mode") == "daemons":
        from zflow.transport.session import SessionOptions, open_session
        from zflow.workflows.deploy import undeploy_workflow

        key = f"{args.name}/{info['instance']}"
        with open_session(SessionOptions(mode="client", connect=args.connect or info["connect"])) as session:
            try:
                undeploy_workflow(session, args.name, info["instance"])
                what = f"deleted instance {key}"
            except UserError:  # already deleted (`zflow instance delete`) or its daemons are gone
                what = f"instance {key} was not on any reachable daemon"
        if info.get("storage_pid"):
            process.stop_pid(info["storage_pid"], signal.SIGTERM)
        info_file.unlink()
        print(f"undeployed {args.name} ({what})")
        return 0
    process.stop_pid(info["pid"])  # the runner stops its steps and storages on Ctrl-C
    info_file.unlink()
    print(f"undeployed {args.name}")
    return 0


def _wf_explain(args: argparse.Namespace) -> int:
    from zflow.transport.auth import load_secret
    from zflow.transport.session import SessionOptions, open_session
    from zflow.workflows.deploy import explain_lines, plan_workflow
    from zflow.workflows.workflow import load_workflow

    wf = load_workflow(args.file)
    with open_session(SessionOptions(mode="client", connect=_daemon_connect(args.connect))) as session:
        plan = plan_workflow(session, wf, policy=args.policy, secret=load_secret(args.secret_file), explain=True)
    print("\n".join(explain_lines(plan, args.policy)))
    return 1 if plan.unplaced() else 0


def _wf_storage(args: argparse.Namespace) -> int:

    from zflow.process import StopSignal
    from zflow.transport.session import EmbeddedRouter, SessionOptions, open_session
    from zflow.workflows.files import BlobStorage
    from zflow.workflows.runs import RunsStorage

    stop = StopSignal().install()
    router = EmbeddedRouter() if not args.connect else None
    try:
        if router is not None:
            router.__enter__()
            print(f"embedded router on {router.endpoint}", flush=True)
        connect = args.connect or [router.endpoint]  # type: ignore[union-attr]
        with open_session(SessionOptions(mode="client", connect=connect)) as session:
            runs = RunsStorage(session, Path(args.dir) / "runs")
            blobs = [BlobStorage(session, b, Path(args.dir) / "blobs" / b) for b in args.blobs]
            ready = session.liveliness().declare_token(keyexprs.storage_alive("runs", str(os.getpid())))
            print(f"runs storage serving zflow/runs/** from {args.dir}", flush=True)
            try:
                stop.wait()
            finally:
                ready.undeclare()
                for b in blobs:
                    b.close()
                runs.close()
    finally:
        if router is not None:
            router.__exit__(None, None, None)
    return 0


def _records(args: argparse.Namespace, workflow: str, run: str = "*") -> list[dict[str, Any]]:
    if args.store or not args.connect:
        from zflow.workflows.runs import RunStore

        # default: the runs that `zflow workflow run` kept in the state folder of each workflow
        stores = [Path(args.store)] if args.store else sorted(Path(args.state_dir).glob("workflows/*/runs"))
        recs = [r for st in stores for r in RunStore(st).list(workflow)]
        return sorted((r for r in recs if run == "*" or r["run"] == run), key=lambda r: r.get("created") or 0)
    from zflow.transport.session import SessionOptions, open_session
    from zflow.workflows.runs import query_runs

    with open_session(SessionOptions(mode="client", connect=args.connect)) as session:
        return query_runs(session, workflow, run)


def _wf_runs(args: argparse.Namespace) -> int:
    recs = _records(args, args.workflow)
    if args.json:
        print(json.dumps(recs, indent=2, default=str))
        return 0
    for r in recs:
        print(f"{r['workflow']:<16} " + _summary_line(r))
    return 0


def _one(args: argparse.Namespace) -> dict[str, Any]:
    recs = _records(args, args.workflow, args.run_id)
    if not recs:
        raise RuntimeFailure(f"run {args.run_id} not found")
    return recs[0]


def _wf_run_show(args: argparse.Namespace) -> int:
    r = _one(args)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
        return 0
    print(f"run {r['run']} of workflow {r['workflow']}: {r['status']}"
          + (f" in {r['duration'] * 1000:.1f} ms" if r.get("duration") is not None else ""))
    if r.get("error"):
        print(f"error: {r['error']}")
    for step, execs in r["steps"].items():
        for e in execs:
            dur = f"{(e.get('duration') or 0) * 1000:.1f} ms"
            err = f"  error: {e['error']}" if e.get("error") else ""
            daemon = f" daemon={e['daemon']}" if e.get("daemon") else ""
            print(f"  {step:<16} {e.get('status'):<8} {dur:>10}  host={e.get('host')} site={e.get('site')}"
                  f"{daemon}{err}")
    if r.get("results"):
        print("results:")
        for k, v in r["results"].items():
            print(f"  {k} = {v!r:.200}")
    return 0


def _wf_logs(args: argparse.Namespace) -> int:
    r = _one(args)
    for step, execs in r["steps"].items():
        if args.step and step != args.step:
            continue
        for e in execs:
            if e.get("logs"):
                for line in str(e["logs"]).splitlines():
                    print(f"[{step}] {line}")
            if e.get("error"):
                print(f"[{step}] ERROR: {e['error']}")
    return 0
