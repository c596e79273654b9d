"""Reproducible layers: a file tree becomes the same tar and gzip bytes on every machine.

The tar is normalised the way reproducible-builds.org describes it: entries sorted with
parents first, uid/gid 0 without names, every mtime the build's ``SOURCE_DATE_EPOCH``,
modes reduced to 0755/0644 (0777 for links), no devices or fifos, GNU long names instead of
pax headers. Python's gzip header carries an OS byte that differs between versions, so the
10-byte header and trailer are written here around a raw deflate stream.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from zflow.build.cache import BlobWriter, Cache

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no flags, mtime 0, OS unknown
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Entry:
    """One path of a layer: a regular file (data), a directory, or a symlink (target)."""

    path: str
    kind: str = "file"  # file | dir | symlink
    data: bytes = b""
    executable: bool = False
    target: str = ""
    mode: int | None = None  # only where a fixed special mode is the point (/tmp: 01777)


@dataclass(frozen=True)
class Layer:
    digest: str  # of the gzip blob
    diff_id: str  # of the uncompressed tar
    size: int
    created_by: str

    def to_json(self) -> dict[str, object]:
        return {"digest": self.digest, "diff_id": self.diff_id, "size": self.size, "created_by": self.created_by}


def normalise(entries: Iterable[Entry]) -> list[Entry]:
    """Last entry wins per path; missing parents added; sorted so every parent comes first."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        path = e.path.strip("/").removeprefix("./")
        if not path or path == ".":
            continue
        by_path[path] = Entry(path, e.kind, e.data, e.executable, e.target, e.mode)
    for path in list(by_path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in by_path:
                by_path[parent] = Entry(parent, "dir")
    return [by_path[p] for p in sorted(by_path, key=lambda p: p.split("/"))]


def _tarinfo(e: Entry, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if e.kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, e.mode if e.mode is not None else 0o755
    elif e.kind == "symlink":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, e.target
    else:
        info.type, info.mode, info.size = tarfile.REGTYPE, 0o755 if e.executable else 0o644, len(e.data)
    return info


class _GzipSink(io.RawIOBase):
    """Hashes the uncompressed tar (diff_id) while deflating it into a cache blob."""

    def __init__(self, out: BlobWriter):
        self.out = out
        self.tar_hash = hashlib.sha256()
        self.crc = 0
        self.length = 0
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
        out.write(GZIP_HEADER)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        b = bytes(data)
        self.tar_hash.update(b)
        self.crc = zlib.crc32(b, self.crc)
        self.length += len(b)
        self.out.write(self.deflate.compress(b))
        return len(b)

    def finish(self) -> None:
        self.out.write(self.deflate.flush())
        self.out.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.length & 0xFFFFFFFF))


def write_layer(entries: Iterable[Entry], cache: Cache, epoch: int, created_by: str) -> Layer:
    """Write one layer into the cache; equal entries and epoch give equal bytes."""
    with cache.writer() as out:
        sink = _GzipSink(out)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            for e in normalise(entries):
                info = _tarinfo(e, epoch)
                tar.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
        sink.finish()
    return Layer(digest=out.digest, diff_id="sha256:" + sink.tar_hash.hexdigest(), size=out.size,
                 created_by=created_by)


def entries_from_tar(stream: tarfile.TarFile, prefix: str = "") -> list[Entry]:
    """Entries of an existing tar (a .deb's data); devices and fifos dropped, hard links copied."""
    out: list[Entry] = []
    seen: dict[str, bytes] = {}
    for m in stream:
        path = prefix + m.name.removeprefix("./").strip("/")
        if not path:
            continue
        if m.isdir():
            out.append(Entry(path, "dir"))
        elif m.issym():
            out.append(Entry(path, "symlink", target=m.linkname))
        elif m.isreg():
            f = stream.extractfile(m)
            data = f.read() if f else b""
            seen[m.name.removeprefix("./")] = data
            out.append(Entry(path, "file", data, bool(m.mode & 0o111)))
        elif m.islnk():
            data = seen.get(m.linkname.removeprefix("./"), b"")
            out.append(Entry(path, "file", data, bool(m.mode & 0o111)))
    return out
