"""A daemon's control server: the queryables under ``zflow/ctl/daemon/<id>/...`` and its bundles.

Each query is decoded into its typed request (``transport/control.py``) before a handler sees
it, on the daemon's worker pool (Zenoh's own threads must stay short); the answer, or the
problems raised, go back in the same query. Verbs: ``status`` and ``logs`` here, the
``instances/...`` verbs by the instance manager (``instances.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zenoh

from zflow import codec, keyexprs
from zflow.daemon.identity import available_memory
from zflow.errors import RuntimeFailure, UserError
from zflow.transport import control as ctl
from zflow.transport.auth import token_claim

if TYPE_CHECKING:
    from zflow.daemon.server import Daemon

log = logging.getLogger("zflow.daemon")
Handler = Callable[[Any], ctl.Message]


class ControlServer:
    """Answers control queries and serves cached bundles for one daemon, until :meth:`close`."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.id = daemon.cfg.id
        self.handlers: dict[str, Handler] = {
            ctl.StatusRequest.verb: self.status,
            ctl.LogsRequest.verb: self.logs,
            **daemon.manager.handlers(),
        }
        session = daemon.session
        self._queryables = [session.declare_queryable(keyexprs.daemon_ctl(self.id, "**"), self._on_query),
                            session.declare_queryable(keyexprs.bundle("*"), self._on_bundle_query)]

    def close(self) -> None:
        for q in self._queryables:
            with contextlib.suppress(Exception):
                q.undeclare()

    # -- verbs ------------------------------------------------------------------------------------
    def _on_query(self, query: zenoh.Query) -> None:
        self.daemon.submit(self._answer, query)

    def answer(self, verb: str, raw: Any) -> dict[str, Any]:
        """The wire answer to ``verb`` with request map ``raw``: ok with fields, or the problems."""
        try:
            kind = ctl.DAEMON_VERBS.get(verb)
            if kind is None:
                return ctl.failed(UserError(f"unknown request {verb!r}"))
            return ctl.ok(self.handlers[verb](ctl.decode(kind, raw)))
        except (UserError, RuntimeFailure) as exc:
            return ctl.failed(exc)
        except Exception as exc:
            log.exception("request %s failed", verb)
            return ctl.failed(exc)

    def _answer(self, query: zenoh.Query) -> None:
        _, verb = keyexprs.parse_daemon_ctl(str(query.key_expr)) or ("", "")
        key = keyexprs.daemon_ctl(self.id, *verb.split("/"))
        try:
            raw = codec.decode(query.payload.to_bytes(), str(query.encoding)) if query.payload else {}
            answer = self.answer(verb, raw)
        except Exception as exc:  # an undecodable payload
            answer = ctl.failed(exc)
        payload, enc = codec.encode(answer)
        with contextlib.suppress(Exception):
            query.reply(key, payload, encoding=enc)

    def status(self, request: ctl.StatusRequest) -> ctl.StatusAnswer:
        d, cfg = self.daemon, self.daemon.cfg
        return ctl.StatusAnswer(
            id=cfg.id, site=cfg.site, arch=cfg.arch, labels=cfg.labels,
            cpus=cfg.cpus, memory=cfg.memory, gpus=cfg.gpus,
            load=list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
            memory_available=available_memory(),
            pools=[p.to_dict() for p in d.pools.free()],
            running=d.manager.running(), instances=len(d.records),
            token=token_claim(cfg.bootstrap_token(), request.nonce),
            uptime=time.time() - d.started,
            pid=os.getpid(),
        )

    def logs(self, request: ctl.LogsRequest) -> ctl.LogsAnswer:
        return ctl.LogsAnswer(lines=list(self.daemon.logs)[-request.lines:])

    # -- bundles ----------------------------------------------------------------------------------
    def _on_bundle_query(self, query: zenoh.Query) -> None:
        digest = keyexprs.parse_bundle(str(query.key_expr))
        if digest is not None and self.daemon.bundles.has(digest):
            self.daemon.submit(self._serve_bundle, query, digest)

    def _serve_bundle(self, query: zenoh.Query, digest: str) -> None:
        payload = self.daemon.bundles.payload(digest)
        if payload is not None:
            with contextlib.suppress(Exception):
                query.reply(keyexprs.bundle(digest), payload, encoding=codec.MSGPACK)
