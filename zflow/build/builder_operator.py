"""The builder operator: builds requested on Zenoh, so any daemon can host a builder.

Keys (``zflow.keyexprs``): a request is put on ``zflow/build/action/req/{id}`` with the
sha256 of an action bundle the requester serves (``zflow/ctl/bundle/{sha256}``); progress is
put on ``.../status/{id}`` (``seq`` orders it), the result on ``.../result/{id}``, which the
builder also answers by query for late joiners. The builder holds the liveliness token
``zflow/alive/builder/{id}``.

Requests are idempotent per id (a repeated id gets its stored result again, never a second
build) and equal requests are never rebuilt: the result is memoised by the request's content,
which names the bundle and therefore the action's files and its ``zflow_lock.json``.
Builds run one at a time on a worker thread, never in a Zenoh callback.

``BuilderNode`` wraps it as a zflow source, deployed by ``descriptors/builder.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zflow import codec, keyexprs
from zflow.build import registry
from zflow.build.cache import Cache, key_of
from zflow.build.image import LAYER_FORMAT, BuildOptions, build_action, zflow_tree
from zflow.build.lock import write_lock
from zflow.build.models import BuildRequest, BuildResult, BuildStatus, Lock
from zflow.build.resolve import parse_platforms
from zflow.build.wheels import tree_digest
from zflow.daemon.bundles import BundleServer, fetch_bundle, make_bundle, write_bundle_files
from zflow.errors import Problem, RuntimeFailure, UserError, format_path
from zflow.runtime.api import Context, Source

log = logging.getLogger("zflow.build.builder")


class Builder:
    """Serves build requests on one Zenoh session until closed."""

    def __init__(self, session: Any, builder_id: str, work_dir: str | Path, cache: Cache | None = None,
                 bundle_timeout: float = 30.0, on_result: Any = None):
        self.session = session
        self.id = keyexprs.chunk(builder_id, "builder id")
        self.work = Path(work_dir)
        self.cache = cache or Cache()
        self.bundle_timeout = bundle_timeout
        self.on_result = on_result
        self.results: dict[str, BuildResult] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, bytes, str] | None] = queue.Queue()
        self.builds = 0  # builds actually run (not answered from the memo)
        # equal requests to equal builder code give equal images: both make the memo's key
        self.code = [LAYER_FORMAT, tree_digest(zflow_tree())]
        self._worker = threading.Thread(target=self._work, name=f"builder-{self.id}", daemon=True)
        self._worker.start()
        self._sub = session.declare_subscriber(keyexprs.build_action("req"), self._on_request)
        self._queryable = session.declare_queryable(keyexprs.build_action("result"), self._on_query)
        self._token = session.liveliness().declare_token(keyexprs.builder_alive(self.id))

    # -- Zenoh callbacks: short, hand work to the worker ----------------------------------------
    def _on_request(self, sample: Any) -> None:
        try:
            _, build_id = keyexprs.parse_build_action(str(sample.key_expr))
        except UserError:
            return
        with self._lock:
            done = self.results.get(build_id)
            fresh = build_id not in self._seen
            self._seen.add(build_id)
        if done is not None:
            self._publish(done)  # a repeated request: the same answer, no second build
        elif fresh:
            self._queue.put((build_id, sample.payload.to_bytes(), str(sample.encoding)))

    def _on_query(self, query: Any) -> None:
        try:
            _, build_id = keyexprs.parse_build_action(str(query.key_expr))
        except UserError:
            build_id = "*"
        with self._lock:
            found = list(self.results.values()) if build_id == "*" else \
                [r for r in (self.results.get(build_id),) if r is not None]
        for result in found:
            payload, ctype = codec.encode(result.model_dump(mode="json"))
            query.reply(keyexprs.build_action("result", result.id), payload, encoding=ctype)

    # -- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            build_id, payload, ctype = item
            result = self._handle(build_id, payload, ctype)
            with self._lock:
                self.results[build_id] = result
            self._publish(result)

    def _status(self, build_id: str, seq: list[int], step: str, detail: str = "") -> None:
        seq[0] += 1
        payload, ctype = codec.encode(BuildStatus(id=build_id, seq=seq[0], step=step, detail=detail).model_dump())
        self.session.put(keyexprs.build_action("status", build_id), payload, encoding=ctype)

    def _publish(self, result: BuildResult) -> None:
        payload, ctype = codec.encode(result.model_dump(mode="json"))
        self.session.put(keyexprs.build_action("result", result.id), payload, encoding=ctype)
        if self.on_result is not None:
            self.on_result(result)

    def _handle(self, build_id: str, payload: bytes, ctype: str) -> BuildResult:
        seq = [0]
        try:
            data = codec.decode(payload, ctype)
            request = BuildRequest.model_validate(data)
        except ValidationError as exc:
            errors = [f"request {format_path(tuple(e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
            return BuildResult(id=build_id, ok=False, errors=errors, exit_code=2)
        except Exception as exc:  # undecodable payload
            return BuildResult(id=build_id, ok=False, errors=[f"request: cannot decode ({exc})"], exit_code=2)
        self._status(build_id, seq, "accepted", f"builder {self.id}")
        key = key_of(["request", request.model_dump(mode="json"), self.code])
        memo = self.cache.memo_get("request", key)
        if memo is not None:
            self._status(build_id, seq, "cached", "an equal request was built before")
            return BuildResult.model_validate({**memo, "id": build_id, "cached": True})
        try:
            result = self._build(build_id, request, seq)
        except UserError as exc:
            return BuildResult(id=build_id, ok=False, errors=[p.render() for p in exc.problems], exit_code=2)
        except RuntimeFailure as exc:
            return BuildResult(id=build_id, ok=False, errors=[str(exc)], exit_code=1)
        except Exception as exc:
            log.exception("build %s failed", build_id)
            return BuildResult(id=build_id, ok=False, errors=[f"{type(exc).__name__}: {exc}"], exit_code=1)
        self.cache.memo_put("request", key, result.model_dump(mode="json"))
        return result

    def _build(self, build_id: str, request: BuildRequest, seq: list[int]) -> BuildResult:
        directory = self._fetch_bundle(request.bundle)
        self._status(build_id, seq, "fetched", f"bundle {request.bundle[:12]}")
        ref = registry.parse_reference(request.push) if request.push else None
        self.builds += 1
        outcome = build_action(directory, BuildOptions(
            platforms=parse_platforms(request.platforms), lock=request.lock, cache=self.cache,
            progress=lambda step, detail: self._status(build_id, seq, step, detail)))
        pushed = None
        if ref is not None:
            if not ref.tag:
                ref = registry.Reference(ref.host, ref.repository, outcome.tag)
            report = registry.push(self.cache, outcome.index, ref, request.insecure)
            pushed = f"{ref}@{report.index}"
            self._status(build_id, seq, "pushed", pushed)
        return BuildResult(id=build_id, ok=True, index=outcome.index.digest,
                           platforms={f"linux/{a}": m.digest for a, m in outcome.manifests.items()},
                           pushed=pushed, lock=outcome.lock.model_dump(mode="json"))

    def _fetch_bundle(self, digest: str) -> Path:
        """The action directory of a bundle, fetched from whoever serves it and verified."""
        target = self.work / "actions" / digest
        if (target / ".ok").exists():
            return target
        files, _ = fetch_bundle(self.session, digest, self.bundle_timeout)
        write_bundle_files(files, target, digest)
        (target / ".ok").write_text("ok")
        return target

    def close(self) -> None:
        for thing in (self._token, self._sub, self._queryable):
            with contextlib.suppress(Exception):
                thing.undeclare()
        self._queue.put(None)
        self._worker.join(timeout=5)


class BuilderNode(Source):
    """The builder as a zflow source (``descriptors/builder.yaml``); results go out on ``results``.

    Configuration: ``id`` (default: the flow instance), ``cache`` (default: the user's build
    cache), ``work`` (bundles, default: ``<cache>/work``).
    """

    outputs = ("results",)

    def setup(self, ctx: Context) -> None:
        cfg = ctx.config
        cache = Cache(os.path.expanduser(str(cfg["cache"])) if cfg.get("cache") else None)
        self.builder = Builder(ctx.session, str(cfg.get("id") or f"{ctx.flow}-{ctx.instance}"),
                               os.path.expanduser(str(cfg.get("work") or cache.root / "work")), cache,
                               on_result=lambda r: ctx.put("results", r.model_dump(mode="json")))

    def run(self, ctx: Context) -> None:
        while ctx.sleep(0.5):
            pass

    def teardown(self, ctx: Context) -> None:
        self.builder.close()


# ---- the requesting side (zflow build action --via-zenoh) ------------------------------------------
def request_build(args: argparse.Namespace) -> int:
    """Serve the action's bundle, put a request, print statuses and the result like a local build."""
    from zflow.transport.session import SessionOptions, open_session
    from zflow.workflows.action import load_action

    action = load_action(args.dir)  # bad metadata fails here, before the network
    platforms = parse_platforms(args.platform)
    if args.push:
        registry.parse_reference(args.push)
    if not args.connect:
        raise UserError(Problem("--via-zenoh needs --connect ENDPOINT (a router the builders reach)"))
    bundle, payload = make_bundle(action.directory)
    request = BuildRequest(bundle=bundle.digest, platforms=platforms, lock=args.lock, push=args.push,
                           insecure=args.insecure)
    build_id = secrets.token_hex(8)
    results: queue.Queue[BuildResult] = queue.Queue()
    with open_session(SessionOptions(mode="client", connect=list(args.connect))) as session:
        if not list(session.liveliness().get(keyexprs.builder_alive(), timeout=5.0)):
            raise RuntimeFailure("no builder operator is alive on the network (zflow/alive/builder/*): "
                                 "run descriptors/builder.yaml on a daemon")
        server = BundleServer(session)
        server.add(bundle.digest, payload)

        def on_status(sample: Any) -> None:
            if not args.quiet:
                s = BuildStatus.model_validate(codec.decode(sample.payload.to_bytes(), str(sample.encoding)))
                print(f"  {s.step}: {s.detail}", file=sys.stderr)

        def on_result(sample: Any) -> None:
            results.put(BuildResult.model_validate(codec.decode(sample.payload.to_bytes(), str(sample.encoding))))

        subs = [session.declare_subscriber(keyexprs.build_action("status", build_id), on_status),
                session.declare_subscriber(keyexprs.build_action("result", build_id), on_result)]
        body, ctype = codec.encode(request.model_dump(mode="json"))
        session.put(keyexprs.build_action("req", build_id), body, encoding=ctype)
        try:
            result = results.get(timeout=args.timeout)
        except queue.Empty:
            raise RuntimeFailure(f"no result for build {build_id} within {args.timeout:.0f} s") from None
        finally:
            for sub in subs:
                sub.undeclare()
            server.close()
    if not result.ok:
        message = "\n".join(result.errors) or "the build failed"
        if result.exit_code == 2:
            raise UserError([Problem(e) for e in result.errors] or message)
        raise RuntimeFailure(message)
    if result.lock is not None and args.lock != "frozen":
        write_lock(action.directory, Lock.model_validate(result.lock))
    for platform, digest in result.platforms.items():
        print(f"{platform} {digest}")
    print(f"index {result.index}")
    if result.pushed:
        print(f"pushed {result.pushed}")
    print(f"build {build_id}" + (" (cached)" if result.cached else ""))
    return 0
