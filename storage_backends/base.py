"""One interface for every place fragments live (zarr-v3 store style), with request accounting.

Subclasses implement the ``_``-prefixed primitives, each of which is ONE request to the
location; the public methods validate keys and ranges and count requests and bytes, so the
query layer can report bytes fetched per location from :meth:`FragmentStore.stats` whatever the
backend. ``get_ranges`` is first class: a remote store answers all ranges of one call with one
request (HTTP multi-range, one Zenoh query).
"""

from __future__ import annotations

import builtins
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

Range = tuple[int, int]  # [start, end): start inclusive, end exclusive

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


class StoreError(Exception):
    """Base of storage location errors."""


class LocationUnavailable(StoreError):
    """The location is down or unreachable (connection refused, timeout, no queryable)."""


class KeyNotFound(StoreError, LookupError):
    """No fragment under that key at this location."""


class RangeNotSatisfiable(StoreError):
    """A requested byte range lies outside the stored object."""


class CorruptFragment(StoreError):
    """A verified read touched chunks that fail their checksum (or an unreadable fragment).

    ``bad_chunks`` lists the chunk indices (empty when the header or trailer itself is bad);
    readers treat the fragment as missing for those bytes and decode around it.
    """

    def __init__(self, message: str, bad_chunks: Sequence[int] = ()):
        super().__init__(message)
        self.bad_chunks = [int(c) for c in bad_chunks]


class BadKey(StoreError, ValueError):
    """The key cannot name a fragment (empty chunk, '..', characters outside [A-Za-z0-9_.-/])."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or any(p in (".", "..") for p in key.split("/")):
        raise BadKey(f"bad fragment key {key!r}: expected chunks of letters, digits, '_', '-', '.' "
                     "separated by '/', no '.' or '..' chunks")
    return key


def check_ranges(ranges: Sequence[Range]) -> list[Range]:
    out = []
    for r in ranges:
        start, end = int(r[0]), int(r[1])
        if start < 0 or end < start:
            raise RangeNotSatisfiable(f"bad range [{start}, {end}): need 0 <= start <= end")
        out.append((start, end))
    return out


def check_within(key: str, ranges: Sequence[Range], size: int) -> None:
    for start, end in ranges:
        if end > size:
            raise RangeNotSatisfiable(f"{key}: range [{start}, {end}) beyond its {size} bytes")


class FragmentStore(ABC):
    """A storage location holding fragments under string keys."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._stats = {"requests": 0, "bytes_fetched": 0, "bytes_stored": 0, "ranges": 0}

    # ---- accounting ---------------------------------------------------------------------------
    def _count(self, requests: int = 1, fetched: int = 0, stored: int = 0, ranges: int = 0) -> None:
        with self._lock:
            self._stats["requests"] += requests
            self._stats["bytes_fetched"] += fetched
            self._stats["bytes_stored"] += stored
            self._stats["ranges"] += ranges

    def stats(self) -> dict[str, Any]:
        """Counters since creation (or the last reset): requests, bytes_fetched, bytes_stored, ranges."""
        with self._lock:
            return {"name": self.name, **self._stats}

    def reset_stats(self) -> None:
        with self._lock:
            for key in self._stats:
                self._stats[key] = 0

    # ---- public API ---------------------------------------------------------------------------
    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._put(check_key(key), data)
        self._count(stored=len(memoryview(data).cast("B")))

    def get(self, key: str) -> bytes:
        data = self._get(check_key(key))
        self._count(fetched=len(data))
        return data

    def get_ranges(self, key: str, ranges: Sequence[Range], verify: bool = False) -> builtins.list[bytes]:
        """The bytes of each [start, end) range of ``key``, in the order asked, in ONE request.

        With ``verify`` (``key`` must be a fragment), the location first checks the CRC of every
        chunk the ranges touch and raises :class:`CorruptFragment` instead of serving bad bytes.
        """
        check_key(key)
        ranges = check_ranges(ranges)
        wanted = [(i, r) for i, r in enumerate(ranges) if r[1] > r[0]]
        out = [b""] * len(ranges)
        if not wanted:
            return out
        spans = [r for _, r in wanted]
        got = self._get_ranges_verified(key, spans) if verify else self._get_ranges(key, spans)
        if len(got) != len(wanted):
            raise StoreError(f"{self.name}: {key}: asked {len(wanted)} ranges, got {len(got)}")
        for (i, (start, end)), data in zip(wanted, got, strict=True):
            if len(data) != end - start:
                raise RangeNotSatisfiable(
                    f"{self.name}: {key}: range [{start}, {end}) returned {len(data)} bytes")
            out[i] = data
        self._count(fetched=sum(len(d) for d in got), ranges=len(wanted))
        return out

    def delete(self, key: str) -> None:
        self._delete(check_key(key))
        self._count()

    def list(self, prefix: str = "") -> builtins.list[str]:
        keys = sorted(self._list(prefix))
        self._count()
        return keys

    def exists(self, key: str) -> bool:
        found = self._exists(check_key(key))
        self._count()
        return found

    def size(self, key: str) -> int:
        """Stored size of ``key`` in bytes."""
        n = self._size(check_key(key))
        self._count()
        return n

    def verify(self, key: str) -> builtins.list[int]:
        """Bad chunk indices of the fragment ``key``, checked where it lives when the location can.

        Remote locations run the CRC check next to the data and send back only the verdict, so
        a scrub moves no fragment bytes. Raises ``zflow.tsdb.fragments.FragmentError`` when the
        bytes are not a readable fragment at all.
        """
        bad = self._verify(check_key(key))
        self._count()
        return bad

    def _get_ranges_verified(self, key: str, ranges: builtins.list[Range]) -> builtins.list[bytes]:
        """Default: check the touched chunks through this store's own reads, then read the ranges
        (local stores; remote ones override it so the check runs next to the data)."""
        from zflow.tsdb.fragments import FragmentError, bad_chunks_for_ranges

        try:
            bad = bad_chunks_for_ranges(lambda spans: self._get_ranges(key, spans), ranges)
        except (FragmentError, RangeNotSatisfiable) as exc:  # too short for its own header/trailer
            raise CorruptFragment(f"{self.name}: {key}: not a readable fragment: {exc}") from None
        if bad:
            raise CorruptFragment(f"{self.name}: {key}: chunks {bad} fail their checksum", bad)
        return self._get_ranges(key, ranges)

    def _verify(self, key: str) -> builtins.list[int]:
        """Default: fetch the fragment and check it here (local stores read it anyway)."""
        from zflow.tsdb.fragments import verify_chunks

        return verify_chunks(self._get(key))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections/sessions; the store is unusable afterwards."""

    def __enter__(self) -> FragmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ---- primitives (one request each) -------------------------------------------------------
    @abstractmethod
    def _put(self, key: str, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def _get(self, key: str) -> bytes: ...

    @abstractmethod
    def _get_ranges(self, key: str, ranges: builtins.list[Range]) -> builtins.list[bytes]:
        """Non-empty, validated ranges; must raise RangeNotSatisfiable past the end."""

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _list(self, prefix: str) -> builtins.list[str]: ...

    @abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abstractmethod
    def _size(self, key: str) -> int: ...
