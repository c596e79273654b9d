"""File and directory values across sites: content-addressed blobs (sha256) in Zenoh storages.

Policy (Ryax's multi-site file handling, made explicit): a produced file is always written to
the producing site's store; it is also pushed to the ``global`` store only when a consumer runs
on another site; a consumer pulls from its own site's store when the file was produced there
and from ``global`` only when it was produced elsewhere. Each store is a queryable that
persists to a directory; writes go through a query so the writer knows the bytes landed.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from zflow import keyexprs
from zflow.workflows.handlers import StepFailure

GLOBAL = "global"
BLOB_KEY = "$blob"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_directory(path: Path) -> bytes:
    """A reproducible tar of a directory (sorted, no owners, fixed mtimes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(path.rglob("*")):
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(path)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if p.is_file():
                with p.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


class BlobStorage:
    """One store (a site's or ``global``): Zenoh queryable persisting blobs to a directory."""

    def __init__(self, session: Any, store: str, directory: str | Path):
        self.store = store
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._q = session.declare_queryable(keyexprs.blob(store, "*"), self._on_query)

    def _on_query(self, query: Any) -> None:
        key = str(query.key_expr)
        parsed = keyexprs.parse_blob(key)
        if parsed is None:
            return
        digest = parsed[1]
        if query.payload is not None:  # a write: verify the address, persist, acknowledge
            data = query.payload.to_bytes()
            if _digest(data) != digest:
                query.reply_err(b"digest mismatch")
                return
            path = self.dir / digest
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            query.reply(key, b"ok")
            return
        path = self.dir / digest
        if path.is_file():
            query.reply(key, path.read_bytes())

    def close(self) -> None:
        self._q.undeclare()


class Blobs:
    """A step's view of the blob stores: writes/reads by policy, counts every transfer."""

    def __init__(self, session: Any, site: str, cache_dir: str | Path, timeout: float = 10.0):
        self.session = session
        self.site = site
        self.cache = Path(cache_dir)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.transfers: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _write(self, store: str, digest: str, data: bytes) -> None:
        replies = list(self.session.get(keyexprs.blob(store, digest), payload=data, timeout=self.timeout))
        if not any(r.ok is not None for r in replies):
            raise StepFailure(f"blob store {store!r} did not acknowledge {digest[:12]} (is its storage running?)")
        with self._lock:
            self.transfers[f"put_{'global' if store == GLOBAL else 'site'}"] += 1

    def _read(self, store: str, digest: str) -> bytes:
        for r in self.session.get(keyexprs.blob(store, digest), timeout=self.timeout):
            if r.ok is not None:
                with self._lock:
                    self.transfers[f"get_{'global' if store == GLOBAL else 'site'}"] += 1
                return r.ok.payload.to_bytes()
        raise StepFailure(f"blob {digest[:12]} not found in store {store!r}")

    def take_transfers(self) -> dict[str, int]:
        """Transfers since the last call (one step execution's worth)."""
        with self._lock:
            out, self.transfers = dict(self.transfers), Counter()
        return out

    def export(self, path: str, kind: str, remote_consumers: bool) -> dict[str, Any]:
        """A handler's output path becomes a blob reference (local store; global if needed)."""
        p = Path(path)
        data = pack_directory(p) if kind == "directory" else p.read_bytes()
        digest = _digest(data)
        cached = self.cache / digest
        if not cached.exists():
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        self._write(self.site, digest, data)
        if remote_consumers:
            self._write(GLOBAL, digest, data)
        return {BLOB_KEY: digest, "name": p.name, "kind": kind, "site": self.site, "size": len(data)}

    def materialize(self, ref: dict[str, Any]) -> str:
        """A blob reference becomes a local path for the handler (fetched once per host)."""
        digest = ref[BLOB_KEY]
        raw = self.cache / digest
        if not raw.exists():
            store = self.site if ref.get("site") == self.site else GLOBAL
            data = self._read(store, digest)
            tmp = raw.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, raw)
        if ref.get("kind") == "directory":
            out = self.cache / f"{digest}.d" / (ref.get("name") or "dir")
            if not out.exists():
                out.mkdir(parents=True, exist_ok=True)
                with tarfile.open(raw, mode="r") as tar:
                    tar.extractall(out, filter="data")
            return str(out)
        out = self.cache / f"{digest}.f" / (ref.get("name") or "file")
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw, out)  # a copy: a handler that edits its input cannot corrupt the cache
        return str(out)


def is_blob(value: Any) -> bool:
    return isinstance(value, dict) and BLOB_KEY in value
