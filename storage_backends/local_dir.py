"""A storage location that is a local directory: one file per key, ranges read with ``pread``.

Also the file layer behind the HTTP range server and the Zenoh location process, so all three
locations agree on key -> path mapping, atomic writes and range semantics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from storage_backends.base import (
    FragmentStore,
    KeyNotFound,
    LocationUnavailable,
    Range,
    check_within,
)


class LocalDirStore(FragmentStore):
    """Fragments as files under ``root`` (created unless ``create=False``).

    Writes go to a temporary file renamed over the key, so readers never see half a fragment
    (``fsync=True`` also makes them durable before the rename). A root that disappears (unmounted
    disk, deleted directory) makes every call raise :class:`LocationUnavailable`, which is how
    tests take a local location "down".
    """

    def __init__(self, root: str | os.PathLike[str], name: str | None = None, create: bool = True,
                 fsync: bool = False):
        self.root = Path(root)
        self.fsync = fsync  # flush each fragment to disk before it replaces the old one
        super().__init__(name or f"dir:{self.root}")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not self.root.is_dir():
            raise LocationUnavailable(f"{self.name}: directory {self.root} is not available")
        return self.root / key

    def _put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.name}: no fragment {key!r}") from None

    def _get_ranges(self, key: str, ranges: list[Range]) -> list[bytes]:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.name}: no fragment {key!r}") from None
        try:
            check_within(key, ranges, os.fstat(fd).st_size)
            return [os.pread(fd, end - start, start) for start, end in ranges]
        finally:
            os.close(fd)

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, IsADirectoryError):
            raise KeyNotFound(f"{self.name}: no fragment {key!r}") from None

    def _list(self, prefix: str) -> list[str]:
        root = self._path("x").parent
        out = []
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.startswith(".put-"):
                    continue
                key = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                if key.startswith(prefix):
                    out.append(key)
        return out

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFound(f"{self.name}: no fragment {key!r}") from None

