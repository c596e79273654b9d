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

import numpy as np

from storage_backends.fragment_format import FragmentError, bad_chunks_for_ranges, verify_chunks
from storage_backends.range_wire import CorruptResponse, unpack_compact_array

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


def check_range_arrays(starts: Any, ends: Any) -> tuple[np.ndarray, np.ndarray]:
    """``starts``/``ends`` as int64 arrays of one shape, validated with numpy (no per-range work)."""
    s = np.asarray(starts, dtype=np.int64).reshape(-1)
    e = np.asarray(ends, dtype=np.int64).reshape(-1)
    if s.shape != e.shape:
        raise RangeNotSatisfiable(f"{len(s)} range starts but {len(e)} ends")
    bad = np.nonzero((s < 0) | (e < s))[0]
    if len(bad):
        i = int(bad[0])
        raise RangeNotSatisfiable(f"bad range [{int(s[i])}, {int(e[i])}): need 0 <= start <= end")
    return s, e


def merge_spans(starts: np.ndarray, ends: np.ndarray, gap: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cover non-empty ranges (any order, overlaps allowed) with few disjoint spans.

    Ranges closer than ``gap`` bytes share a span. Returns ``(span_starts, span_ends, where)``
    where ``where[i]`` is the span holding range i. Lets a store read each span once and
    serve every range out of it with :func:`gather`.
    """
    ordered = len(starts) < 2 or bool((starts[1:] >= starts[:-1]).all())
    order = None if ordered else np.argsort(starts, kind="stable")  # timsort: fast on sorted runs
    s, e = (starts, ends) if order is None else (starts[order], ends[order])
    reach = np.maximum.accumulate(e)
    new = s[1:] > reach[:-1] + gap
    brk = np.nonzero(new)[0] + 1
    first = np.concatenate([[0], brk])
    last = np.concatenate([brk - 1, [len(s) - 1]])
    span_s, span_e = s[first], reach[last]
    where_sorted = np.concatenate([[0], np.cumsum(new)])
    if order is None:
        return span_s, span_e, where_sorted
    where = np.empty_like(where_sorted)
    where[order] = where_sorted
    return span_s, span_e, where


def gather(buf: np.ndarray, pos: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``buf[pos[i] : pos[i] + lengths[i]]`` for every i, vectorised.

    Many short ranges use one fancy-indexing pass; few long ones are copied slice by slice
    (an index array would cost 8 bytes per byte copied).
    """
    total = int(lengths.sum())
    n = len(lengths)
    if n == 1:
        return buf[int(pos[0]) : int(pos[0]) + total]
    if n <= 64 or total >= 256 * n:
        out = np.empty(total, dtype=np.uint8)
        o = 0
        for p, ln in zip(pos.tolist(), lengths.tolist(), strict=True):
            out[o : o + ln] = buf[p : p + ln]
            o += ln
        return out
    it = np.int32 if len(buf) < 2**31 else np.int64  # half the index traffic when it fits
    out_start = np.cumsum(lengths) - lengths
    idx = np.repeat((pos - out_start).astype(it), lengths)
    idx += np.arange(total, dtype=it)
    return buf[idx]


def concat_from_compact(store: str, key: str, body: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The data section of a compact range response (a view, no copy), after checking it
    answers exactly the ranges asked (remote stores' ``_get_ranges_concat``)."""
    try:
        offsets, lengths, data = unpack_compact_array(body)
    except CorruptResponse as exc:
        raise StoreError(f"{store}: {key}: {exc}") from None
    if len(offsets) != len(starts) or not (
            np.array_equal(offsets, starts) and np.array_equal(lengths, ends - starts)):
        raise StoreError(f"{store}: {key}: response ranges differ from the {len(starts)} asked")
    return data


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

    def get_ranges_concat(self, key: str, starts: Any, ends: Any,
                          verify: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`get_ranges`: the bytes of every [starts[i], ends[i]) range of ``key``,
        concatenated in the order given, in ONE request, and ``offsets`` (len n+1) so range i
        is ``data[offsets[i]:offsets[i + 1]]``.

        Same errors and accounting as :meth:`get_ranges`, but validation and slicing run in
        numpy, so 10^5 ranges cost milliseconds rather than a Python loop per range.
        """
        check_key(key)
        s, e = check_range_arrays(starts, ends)
        lengths = e - s
        offsets = np.zeros(len(s) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total == 0:
            return np.zeros(0, dtype=np.uint8), offsets
        keep = lengths > 0
        if not keep.all():
            s, e = s[keep], e[keep]
        data = self._get_ranges_concat(key, s, e, verify)
        if len(data) != total:
            raise RangeNotSatisfiable(f"{self.name}: {key}: {len(s)} ranges of {total} bytes "
                                      f"returned {len(data)} bytes")
        self._count(fetched=total, ranges=len(s))
        return data, offsets

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
        a scrub moves no fragment bytes. Raises ``storage_backends.fragment_format.FragmentError`` when the
        bytes are not a readable fragment at all.
        """
        bad = self._verify(check_key(key))
        self._count()
        return bad

    def _get_ranges_verified(self, key: str, ranges: builtins.list[Range]) -> builtins.list[bytes]:
        """Default: check the touched chunks through this store's own reads, then read the ranges
        (local stores; remote ones override it so the check runs next to the data)."""
        try:
            bad = bad_chunks_for_ranges(lambda spans: self._get_ranges(key, spans), ranges)
        except (FragmentError, RangeNotSatisfiable) as exc:  # too short for its own header/trailer
            raise CorruptFragment(f"{self.name}: {key}: not a readable fragment: {exc}") from None
        if bad:
            raise CorruptFragment(f"{self.name}: {key}: chunks {bad} fail their checksum", bad)
        return self._get_ranges(key, ranges)

    def _get_ranges_concat(self, key: str, starts: np.ndarray, ends: np.ndarray,
                           verify: bool) -> np.ndarray:
        """Default: through the per-range primitives (stores without a vectorised path)."""
        ranges = list(zip(starts.tolist(), ends.tolist(), strict=True))
        got = self._get_ranges_verified(key, ranges) if verify else self._get_ranges(key, ranges)
        for (a, b), d in zip(ranges, got, strict=True):
            if len(d) != b - a:
                raise RangeNotSatisfiable(f"{self.name}: {key}: range [{a}, {b}) returned {len(d)} bytes")
        return np.frombuffer(b"".join(got), dtype=np.uint8)

    def _verify(self, key: str) -> builtins.list[int]:
        """Default: fetch the fragment and check it here (local stores read it anyway)."""
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
