"""Every daemon's replica of the instance records and node checkpoints: a replicated Zenoh storage.

Instance records live under ``zflow/ctl/records/{flow}/{instance}``, checkpoints under
``zflow/ctl/checkpoint/{flow}/{instance}/{node}``. Each daemon subscribes to both families,
keeps what it hears (records on disk too, so a restart has them), and answers queries on
them with its copy, so a record outlives any single daemon: whoever asks (a CLI, a daemon
that comes back) gets every replica's copy and takes the newest (``InstanceRecord.version``).

Records heard this way are only ever *kept*: hearing one never starts a node (that takes a
control request, ``instances/load|update|start``); it may stop nodes that a newer generation
moved away (the manager's ``fence``). Deleting an instance leaves a tombstone (state
``deleted``), so a daemon coming back with an old copy cannot bring the instance back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import zenoh

from zflow import codec, keyexprs
from zflow.daemon.state import InstanceRecord, RecordStore
from zflow.transport.control_client import ControlClient

log = logging.getLogger("zflow.daemon")
SYNC_TIMEOUT = 3.0


class Replica:
    """Records and checkpoints this daemon keeps for the cluster; ``on_newer(rec)`` runs (on a
    worker thread) whenever a newer copy of a record than the one held arrives."""

    def __init__(self, daemon_id: str, session: zenoh.Session, store: RecordStore,
                 on_newer: Callable[[InstanceRecord], None], submit: Callable[..., Any]):
        self.id = daemon_id
        self.session = session
        self.store = store
        self.on_newer = on_newer
        self.submit = submit
        self.lock = threading.RLock()
        self.records: dict[str, InstanceRecord] = {r.key: r for r in store.load_all()}
        self.checkpoints: dict[str, tuple[bytes, str]] = {}
        self._decls: list[Any] = []

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Listen and answer (before syncing, so nothing written meanwhile is missed)."""
        s = self.session
        self._decls = [
            s.declare_subscriber(keyexprs.instance_record(), self._on_record_sample),
            s.declare_queryable(keyexprs.instance_record(), self._on_record_query),
            s.declare_subscriber(keyexprs.checkpoint(), self._on_checkpoint_sample),
            s.declare_queryable(keyexprs.checkpoint(), self._on_checkpoint_query),
        ]

    def close(self) -> None:
        for decl in self._decls:
            with contextlib.suppress(Exception):
                decl.undeclare()
        self._decls = []

    def sync(self, timeout: float = SYNC_TIMEOUT) -> list[InstanceRecord]:
        """Ask the other replicas for everything they hold; returns the records that were newer."""
        newer = []
        for answer in ControlClient(self.session).get_all(keyexprs.instance_record(), timeout=timeout):
            with contextlib.suppress(TypeError, KeyError, ValueError):
                rec = self.merge(InstanceRecord.from_dict(answer))
                if rec is not None:
                    newer.append(rec)
        for reply in self.session.get(keyexprs.checkpoint(), target=zenoh.QueryTarget.ALL,
                                      consolidation=zenoh.ConsolidationMode.NONE, timeout=timeout):
            if reply.ok is not None:
                key = str(reply.ok.key_expr)
                with self.lock:
                    self.checkpoints.setdefault(key, (reply.ok.payload.to_bytes(), str(reply.ok.encoding)))
        return newer

    # -- records ----------------------------------------------------------------------------------
    def get(self, key: str) -> InstanceRecord | None:
        with self.lock:
            return self.records.get(key)

    def live(self) -> dict[str, InstanceRecord]:
        """Records of instances that exist (no tombstones)."""
        with self.lock:
            return {k: r for k, r in self.records.items() if r.state != "deleted"}

    def merge(self, rec: InstanceRecord) -> InstanceRecord | None:
        """Take a copy heard from elsewhere. Returns it (with the events of the copy it replaces)
        when it is newer than the one held; an older copy only contributes its events."""
        with self.lock:
            cur = self.records.get(rec.key)
            if not rec.newer_than(cur):
                if cur is not None and rec.created == cur.created:
                    before = len(cur.events)
                    cur.adopt_events(rec)
                    if len(cur.events) != before:
                        self.store.save(cur)
                return None
            if cur is not None:
                rec.adopt_events(cur)
            self._keep(rec)
            return rec

    def put(self, rec: InstanceRecord) -> None:
        """Keep a record as it is (e.g. the deployer's, loaded here) and tell the other replicas."""
        with self.lock:
            cur = self.records.get(rec.key)
            if cur is not None and cur.created == rec.created:
                rec.adopt_events(cur)
            self._keep(rec)
        self.publish(rec)

    def commit(self, rec: InstanceRecord) -> InstanceRecord:
        """A change made here: a new revision written by this daemon, kept and published."""
        with self.lock:
            cur = self.records.get(rec.key)
            rec.revision = max(rec.revision, cur.revision if cur is not None and cur.created == rec.created else 0) + 1
            rec.writer = self.id
            if cur is not None and cur is not rec:
                rec.adopt_events(cur)
            self._keep(rec)
        self.publish(rec)
        return rec

    def _keep(self, rec: InstanceRecord) -> None:
        self.records[rec.key] = rec
        self.store.save(rec)
        if rec.state == "deleted":
            prefix = keyexprs.checkpoint(rec.flow, rec.instance, "*")[:-1]
            for key in [k for k in self.checkpoints if k.startswith(prefix)]:
                del self.checkpoints[key]

    def publish(self, rec: InstanceRecord) -> None:
        payload, enc = codec.encode(rec.to_dict())
        with contextlib.suppress(Exception):
            self.session.put(keyexprs.instance_record(rec.flow, rec.instance), payload, encoding=enc)

    def _on_record_sample(self, sample: Any) -> None:
        if sample.kind == zenoh.SampleKind.PUT:  # Zenoh thread: decode and merge on a worker
            self.submit(self._take, sample.payload.to_bytes(), str(sample.encoding))

    def _take(self, raw: bytes, encoding: str) -> None:
        try:
            rec = InstanceRecord.from_dict(codec.decode(raw, encoding))
        except (TypeError, KeyError, ValueError) as exc:
            log.warning("ignoring a malformed instance record: %s", exc)
            return
        newer = self.merge(rec)
        if newer is not None:
            self.on_newer(newer)

    def _on_record_query(self, query: Any) -> None:
        self.submit(self._answer_records, query)

    def _answer_records(self, query: Any) -> None:
        wanted = zenoh.KeyExpr(str(query.key_expr))
        with self.lock:
            records = [r.to_dict() for r in self.records.values()]
        for d in records:
            key = keyexprs.instance_record(d["flow"], d["instance"])
            if wanted.intersects(zenoh.KeyExpr(key)):
                payload, enc = codec.encode(d)
                with contextlib.suppress(Exception):
                    query.reply(key, payload, encoding=enc)

    # -- checkpoints ------------------------------------------------------------------------------
    def _on_checkpoint_sample(self, sample: Any) -> None:
        key = str(sample.key_expr)
        if keyexprs.parse_checkpoint(key) is None:
            return
        with self.lock:
            if sample.kind == zenoh.SampleKind.DELETE:
                self.checkpoints.pop(key, None)
            else:
                self.checkpoints[key] = (sample.payload.to_bytes(), str(sample.encoding))

    def _on_checkpoint_query(self, query: Any) -> None:
        wanted = zenoh.KeyExpr(str(query.key_expr))
        with self.lock:
            items = list(self.checkpoints.items())
        for key, (payload, enc) in items:
            if wanted.intersects(zenoh.KeyExpr(key)):
                with contextlib.suppress(Exception):
                    query.reply(key, payload, encoding=enc)
