"""Run records: step events folded into one record per run, kept in a Zenoh storage on disk.

Steps publish events on ``zflow/runlog/{workflow}/{run}/{step}``; the runs storage folds them
into a record, publishes it on ``zflow/runs/{workflow}/{run}`` and answers queries there from
its directory (one JSON file per run, written behind a short delay so a busy workflow costs a
few file writes per second, not one per event). Restarting the storage loses nothing written.

A run completes when every step has run as many times as its parents fed it: a handler that
returns a list of N dicts feeds N executions downstream, one that returns [] feeds none.

A run's record names its runner (``zflow workflow run``). A run cannot finish without its runner,
so when the runner is gone its unfinished runs end as ``Error`` with the reason: the runs storage
watches the runners' liveliness tokens (and checks the runners of unfinished records when it
starts), and a reader of a runs folder checks the lock a runner's own storage holds there (the
kernel drops it when the process dies, SIGKILL included).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import zenoh

from zflow import codec, keyexprs

RUNNING, COMPLETED, ERROR, CANCELED = "Running", "Completed", "Error", "Canceled"
FINAL = (COMPLETED, ERROR, CANCELED)


def new_record(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow": event["workflow"], "run": event["run"], "status": RUNNING,
        "created": event.get("created", event.get("start")), "ended": None, "duration": None,
        "trigger": event["step"], "plan": event.get("plan", {}), "steps": {}, "outputs": {},
        "results": {}, "results_spec": event.get("results", {}), "error": None, "runner": event.get("runner"),
    }


def runner_gone(runner: str, how: str) -> str:
    return f"the workflow runner {runner} is gone ({how}): it died or was stopped before the run finished"


def orphan(record: dict[str, Any], why: str, when: float | None = None) -> bool:
    """End an unfinished run whose runner is gone as Error with the reason (False if it had ended)."""
    if record["status"] in FINAL:
        return False
    record["status"] = ERROR
    record["error"] = why
    record["ended"] = when or time.time()
    if record.get("created"):
        record["duration"] = record["ended"] - record["created"]
    return True


RUNNER_LOCKS = ".runners"  # in a runs folder: one file per runner whose own storage writes there


class RunnerLock:
    """Held (flock) by a runner's own runs storage while the runner lives; the file stays, so a
    reader of the folder that can take the lock knows the runner is gone."""

    def __init__(self, directory: Path, runner: str):
        path = directory / RUNNER_LOCKS / f"{runner}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def close(self) -> None:
        os.close(self.fd)


def lock_released(directory: Path, runner: str) -> bool:
    """True when the runner's lock in this folder exists and nobody holds it (it is gone)."""
    try:
        fd = os.open(directory / RUNNER_LOCKS / f"{runner}.lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # its storage wrote elsewhere: this folder cannot tell
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        return True
    finally:
        os.close(fd)


def fold(record: dict[str, Any], event: dict[str, Any]) -> None:
    """Apply one step event to a run record and recompute its status."""
    if event.get("runner"):
        record["runner"] = event["runner"]
    if event.get("plan"):
        record["plan"] = event["plan"]
        record["results_spec"] = event.get("results", record.get("results_spec", {}))
        record["created"] = event.get("created", record.get("created"))
        record["trigger"] = event["step"]
    execution = {k: event.get(k) for k in ("status", "start", "end", "host", "site", "daemon", "error", "code",
                                           "logs", "branch", "emitted", "transfers")}
    if event.get("start") is not None and event.get("end") is not None:
        execution["duration"] = event["end"] - event["start"]
    record["steps"].setdefault(event["step"], []).append(execution)
    for name, value in (event.get("outputs") or {}).items():
        record["outputs"][f"{event['step']}.{name}"] = value
    if record["status"] in FINAL:
        return
    if event.get("status") == ERROR:
        record["status"] = ERROR
        record["error"] = f"step {event['step']!r} failed: {event.get('error')}"
        record["ended"] = event.get("end")
    elif event.get("status") == CANCELED:
        record["status"] = CANCELED
        record["error"] = event.get("error")
        record["ended"] = event.get("end")
    elif _complete(record):
        record["status"] = COMPLETED
        record["ended"] = max((e.get("end") or 0) for ex in record["steps"].values() for e in ex)
    if record["status"] in FINAL and record.get("created") and record.get("ended"):
        record["duration"] = record["ended"] - record["created"]
        for key, ref in (record.get("results_spec") or {}).items():
            if ref in record["outputs"]:
                record["results"][key] = record["outputs"][ref]


def _complete(record: dict[str, Any]) -> bool:
    plan: dict[str, list[str]] = record.get("plan") or {}
    if not plan:
        return False
    done: dict[str, int] = {s: sum(1 for e in ex if e.get("status") == "Success")
                            for s, ex in record["steps"].items()}
    for step, parents in plan.items():  # plan is in topological order
        if not parents:
            if done.get(step, 0) < 1:
                return False
            continue
        fed = sum((e.get("emitted") or {}).get(step, 0) for p in parents for e in record["steps"].get(p, []))
        if fed % len(parents):
            return False
        if done.get(step, 0) < fed // len(parents):
            return False
    return True


class RunStore:
    """Run records on disk: ``{dir}/{workflow}/{run}.json``."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, workflow: str, run: str) -> Path:
        return self.dir / workflow / f"{run}.json"

    def save(self, record: dict[str, Any]) -> None:
        p = self.path(record["workflow"], record["run"])
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, default=_jsonable), encoding="utf-8")
        os.replace(tmp, p)

    def load(self, workflow: str, run: str) -> dict[str, Any] | None:
        p = self.path(workflow, run)
        try:
            return self._settled(json.loads(p.read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def list(self, workflow: str = "*") -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.dir.glob(f"{workflow}/*.json")):
            with contextlib.suppress(json.JSONDecodeError, OSError):
                out.append(self._settled(json.loads(p.read_text(encoding="utf-8"))))
        return sorted(out, key=lambda r: r.get("created") or 0)

    def _settled(self, record: dict[str, Any]) -> dict[str, Any]:
        """An unfinished record whose runner's lock here is released ends as Error, on disk too."""
        runner = record.get("runner")
        if record["status"] not in FINAL and runner and lock_released(self.dir, runner):
            orphan(record, runner_gone(runner, "it no longer holds its lock in this runs folder"))
            self.save(record)
        return record


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return {"bytes": len(v)}
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


class RunsStorage:
    """The runs storage process's core: subscriber on step events + queryable on records.

    ``runner``: the runner this storage runs inside (it holds the runner's lock in the folder).
    A runner whose liveliness token goes away has ``grace_s`` for its last events (a stopping
    runner cancels its runs) before its unfinished runs end as Error.
    """

    def __init__(self, session: Any, directory: str | Path, workflow: str = "*", flush_s: float = 0.05,
                 runner: str | None = None, grace_s: float = 2.0):
        self.session = session
        self.store = RunStore(directory)
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.flush_s = flush_s
        self.grace_s = grace_s
        self._runner_lock = RunnerLock(self.store.dir, runner) if runner else None
        self._gone: dict[str, float] = {}  # runner -> when its unfinished runs end (monotonic)
        self._dead: set[str] = set()  # runners whose runs were ended: late events end at once
        self._sub = session.declare_subscriber(keyexprs.run_event(workflow, "*", "*"), self._on_event)
        self._q = session.declare_queryable(keyexprs.run_records(workflow), self._on_query)
        # history=True: a runner that was alive before this storage must report its end too
        self._runners = session.liveliness().declare_subscriber(keyexprs.runner_alive(workflow, "*"),
                                                                self._on_runner, history=True)
        self._settle_stored(workflow)
        self._flusher = threading.Thread(target=self._flush_loop, name="runs-flush", daemon=True)
        self._flusher.start()

    # -- runners that are gone ---------------------------------------------------------------------
    def _on_runner(self, sample: Any) -> None:
        parsed = keyexprs.parse_runner_alive(str(sample.key_expr))
        if parsed is None:
            return
        runner = parsed[1]
        with self._lock:
            if sample.kind == zenoh.SampleKind.DELETE:
                self._gone[runner] = time.monotonic() + self.grace_s
            else:
                self._gone.pop(runner, None)

    def _alive_runners(self, workflow: str) -> set[str] | None:
        """Runners with a token now (asked twice: one empty reply under load proves nothing)."""
        alive: set[str] = set()
        try:
            for _ in range(2):
                for reply in self.session.liveliness().get(keyexprs.runner_alive(workflow, "*"), timeout=1.0):
                    parsed = None if reply.ok is None else keyexprs.parse_runner_alive(str(reply.ok.key_expr))
                    if parsed is not None:
                        alive.add(parsed[1])
        except zenoh.ZError:
            return None
        return alive

    def _settle_stored(self, workflow: str) -> None:
        """Unfinished records left by an earlier life whose runner has no token now end as Error."""
        stale = [r for r in self.store.list(workflow) if r["status"] not in FINAL and r.get("runner")]
        alive = self._alive_runners(workflow) if stale else set()
        if alive is None:
            return
        for record in stale:
            if record["runner"] not in alive and orphan(record, runner_gone(
                    record["runner"], "it has no liveliness token on the Zenoh network")):
                self.store.save(record)
                self._publish(record)

    def _orphan_runs_of_gone_runners(self) -> None:
        now = time.monotonic()
        ended: list[dict[str, Any]] = []
        with self._lock:
            due = {r for r, at in self._gone.items() if at <= now}
            if not due:
                return
            for runner in due:
                del self._gone[runner]
            self._dead |= due
            for key, record in self.records.items():
                runner = record.get("runner")
                if runner in due and orphan(record, runner_gone(runner, "its liveliness token is gone")):
                    self._dirty.add(key)
                    ended.append(dict(record))
        for record in ended:
            self._publish(record)

    def _publish(self, record: dict[str, Any]) -> None:
        payload, ctype = codec.encode(record)
        self.session.put(keyexprs.runs(record["workflow"], record["run"]), payload, encoding=ctype,
                         congestion_control=zenoh.CongestionControl.BLOCK)

    def _on_event(self, sample: Any) -> None:
        try:
            event = codec.decode(sample.payload.to_bytes(), str(sample.encoding))
        except Exception:
            return
        key = (event["workflow"], event["run"])
        with self._lock:
            record = self.records.get(key)
            if record is None:
                record = self.store.load(*key) or new_record(event)
                self.records[key] = record
            fold(record, event)
            if record.get("runner") in self._dead:
                orphan(record, runner_gone(record["runner"], "its liveliness token is gone"))
            self._dirty.add(key)
            payload, ctype = codec.encode(record)
        self.session.put(keyexprs.runs(key[0], key[1]), payload, encoding=ctype,
                         congestion_control=zenoh.CongestionControl.BLOCK)

    def _on_query(self, query: Any) -> None:
        parsed = keyexprs.parse_runs(str(query.key_expr))
        if parsed is None:
            return
        wf, run = parsed
        with self._lock:
            if "*" in wf or "*" in run:
                found = {(r["workflow"], r["run"]): r for r in self.store.list(wf if "*" not in wf else "*")}
                found.update({k: v for k, v in self.records.items()
                              if (wf in ("*", "**") or k[0] == wf)})
                # `run-show ID` asks zflow/runs/*/ID: only that run (a reply outside the query's key fails it)
                records = [r for r in found.values() if "*" in run or r["run"] == run]
            else:
                r = self.records.get((wf, run)) or self.store.load(wf, run)
                records = [r] if r else []
        for r in records:
            payload, ctype = codec.encode(r)
            query.reply(keyexprs.runs(r["workflow"], r["run"]), payload, encoding=ctype)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self._orphan_runs_of_gone_runners()
            self.flush()

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            records = [dict(self.records[k]) for k in dirty]
            for k in dirty:  # finished runs leave memory once on disk
                if self.records[k]["status"] in FINAL:
                    self.records.pop(k, None)
        for r in records:
            self.store.save(r)

    def close(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=2)
        for declared in (self._sub, self._q, self._runners):
            with contextlib.suppress(Exception):
                declared.undeclare()
        self.flush()
        if self._runner_lock is not None:
            self._runner_lock.close()


def query_runs(session: Any, workflow: str = "*", run: str = "*", timeout: float = 5.0) -> list[dict[str, Any]]:
    """Run records from whatever runs storage answers on the Zenoh network."""
    selector = keyexprs.runs("*" if workflow == "**" else workflow, run)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for reply in session.get(selector, timeout=timeout):
        if reply.ok is None:
            continue
        r = codec.decode(reply.ok.payload.to_bytes(), str(reply.ok.encoding))
        out[(r["workflow"], r["run"])] = r
    return sorted(out.values(), key=lambda r: r.get("created") or 0)


def now() -> float:
    return time.time()
