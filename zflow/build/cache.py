"""The content-addressed cache every build step reads from: ``blobs/sha256/<hex>`` plus small
JSON memos keyed by the digest of a step's inputs.

Debs, wheels and layers land here once; a ``--lock frozen`` build reads only from here, so it
needs no network. Writes go through a temporary file and a rename, so a killed build never
leaves a blob whose name lies about its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from zflow import settings
from zflow.errors import RuntimeFailure


def default_dir() -> Path:
    configured = settings.build_cache()
    if configured is not None:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zflow" / "build"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def key_of(value: Any) -> str:
    """A stable digest of a JSON-able value: the name of a memo."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Cache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_dir()
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "memo").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise RuntimeFailure(f"blob {digest} is not in the build cache {self.root}") from None

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        if not self.has(digest):
            with self.writer() as w:
                w.write(data)
        return digest

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def memo_get(self, kind: str, key: str) -> Any | None:
        p = self.root / "memo" / f"{kind}-{key}.json"
        try:
            return json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def memo_put(self, kind: str, key: str, value: Any) -> None:
        p = self.root / "memo" / f"{kind}-{key}.json"
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, sort_keys=True))
        os.replace(tmp, p)


class BlobWriter:
    """A file-like sink that hashes what it is given and files it under its digest on close."""

    def __init__(self, cache: Cache):
        self.cache = cache
        fd, name = tempfile.mkstemp(dir=cache.root / "blobs", prefix=".partial-")
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._name = name
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest = ""

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._file.write(data)

    def close(self) -> str:
        self._file.close()
        self.digest = "sha256:" + self._hash.hexdigest()
        target = self.cache.path(self.digest)
        os.chmod(self._name, 0o644)
        os.replace(self._name, target)
        return self.digest

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._name)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

