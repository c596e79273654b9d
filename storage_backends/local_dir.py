"""A storage location that is a local directory: one file per key, ranges read with ``pread``.

Also the file layer behind the HTTP range server and the Zenoh location process, so all three
locations agree on key -> path mapping, atomic writes and range semantics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from storage_backends.base import (
    CorruptFragment,
    FragmentStore,
    KeyNotFound,
    LocationUnavailable,
    Range,
    RangeNotSatisfiable,
    check_within,
    gather,
    merge_spans,
)
from storage_backends.crc import crc32
from storage_backends.fragment_format import (
    PAYLOAD_OFFSET,
    FragmentError,
    FragmentHeader,
    parse_trailer,
    touched_chunks,
)

# Ranges closer than this share one pread: a syscall costs more than copying a page of gap.
READ_GAP = 4096
HEADER_CACHE = 4096  # fragments whose header and CRC table a store keeps (~1 KB each)
SMALL = 16  # up to this many ranges, plain preads beat the vectorised set-up
SMALL_BYTES = 16384


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
        self._headers: dict[str, tuple[tuple[int, int, int], FragmentHeader, np.ndarray]] = {}
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

    def _open(self, key: str) -> int:
        try:
            return os.open(self._path(key), os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.name}: no fragment {key!r}") from None

    def _get_ranges(self, key: str, ranges: list[Range]) -> list[bytes]:
        fd = self._open(key)
        try:
            check_within(key, ranges, os.fstat(fd).st_size)
            return [os.pread(fd, end - start, start) for start, end in ranges]
        finally:
            os.close(fd)

    def _get_ranges_concat(self, key: str, starts: np.ndarray, ends: np.ndarray,
                           verify: bool) -> np.ndarray:
        """One pread per cluster of nearby ranges into one buffer, then a numpy gather.

        With ``verify`` the whole checksum chunks under the ranges are read in the same preads
        and their CRCs checked before any byte is served (so a verified read costs the chunk
        bytes of disk I/O and ~20 GB/s of CRC, not a second pass).
        """
        fd = self._open(key)
        try:
            size = os.fstat(fd).st_size
            far = int(np.argmax(ends))
            if int(ends[far]) > size:
                raise RangeNotSatisfiable(
                    f"{key}: range [{int(starts[far])}, {int(ends[far])}) beyond its {size} bytes")
            # a few ranges: numpy set-up would dominate (checked: small enough that reading
            # them again after their chunks costs nothing)
            if len(starts) <= SMALL and (not verify or int((ends - starts).sum()) <= SMALL_BYTES):
                if verify:
                    self._check_small(fd, key, size, starts.tolist(), ends.tolist())
                return np.frombuffer(b"".join([os.pread(fd, e - a, a) for a, e in
                                               zip(starts.tolist(), ends.tolist(), strict=True)]),
                                     dtype=np.uint8)
            want_s, want_e = starts, ends
            if verify:
                header, crcs, chunks = self._touched(fd, key, size, starts, ends)
                cs = PAYLOAD_OFFSET + chunks * header.chunk_size
                ce = np.minimum(cs + header.chunk_size, header.trailer_offset)
                want_s, want_e = np.concatenate([starts, cs]), np.concatenate([ends, ce])
            span_s, span_e, where = merge_spans(want_s, want_e, READ_GAP)
            lens = span_e - span_s
            buf = np.empty(int(lens.sum()), dtype=np.uint8)
            at = np.cumsum(lens) - lens
            view = buf.data  # a memoryview of the array's bytes (preadv fills them in place)
            for a, p, n in zip(span_s.tolist(), at.tolist(), lens.tolist(), strict=True):
                if os.preadv(fd, [view[p:p + n]], a) != n:
                    raise RangeNotSatisfiable(f"{self.name}: {key}: file shrank while being read")
            if verify and len(chunks):
                w = where[len(starts):]
                cpos = (at[w] + cs - span_s[w]).tolist()
                bad = [c for c, p, n, want in zip(chunks.tolist(), cpos, (ce - cs).tolist(),
                                                  crcs[chunks].tolist(), strict=True)
                       if crc32(view[p:p + n]) != want]
                if bad:
                    raise CorruptFragment(f"{self.name}: {key}: chunks {bad} fail their checksum", bad)
            w = where[:len(starts)]
            return gather(buf, at[w] + starts - span_s[w], ends - starts)
        finally:
            os.close(fd)

    def _check_small(self, fd: int, key: str, size: int, starts: list[int], ends: list[int]) -> None:
        """The CRC check of :meth:`_get_ranges_concat` for a handful of ranges, in plain Python."""
        header, crcs = self._header(fd, key, size)
        lo, hi, c = PAYLOAD_OFFSET, header.trailer_offset, header.chunk_size
        touched = sorted({k for a, b in zip(starts, ends, strict=True) if b > lo and a < hi and b > a
                          for k in range((max(a, lo) - lo) // c, (min(b, hi) - lo - 1) // c + 1)})
        bad = [k for k in touched
               if crc32(os.pread(fd, min(c, hi - lo - k * c), lo + k * c)) != int(crcs[k])]
        if bad:
            raise CorruptFragment(f"{self.name}: {key}: chunks {bad} fail their checksum", bad)

    def _touched(self, fd: int, key: str, size: int, starts: np.ndarray,
                 ends: np.ndarray) -> tuple[FragmentHeader, np.ndarray, np.ndarray]:
        header, crcs = self._header(fd, key, size)
        return header, crcs, touched_chunks(header, starts, ends)

    def _header(self, fd: int, key: str, size: int) -> tuple[FragmentHeader, np.ndarray]:
        """Header and CRC table of a fragment, cached per file version (inode, size, mtime):
        zflow replaces fragments by rename, and any in-place rewrite changes the mtime."""
        st = os.fstat(fd)
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._headers.get(key)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        try:
            header = FragmentHeader.parse(os.pread(fd, 512, 0))
            if header.file_size > size:
                raise FragmentError(f"fragment is {size} bytes, header says {header.file_size}")
            crcs = parse_trailer(header, os.pread(fd, header.trailer_size, header.trailer_offset))
        except FragmentError as exc:
            raise CorruptFragment(f"{self.name}: {key}: not a readable fragment: {exc}") from None
        if len(self._headers) >= HEADER_CACHE:
            self._headers.clear()
        self._headers[key] = (version, header, crcs)
        return header, crcs

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

