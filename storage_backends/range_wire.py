"""Byte-range wire formats shared by the HTTP range server, the Zenoh location and their clients.

* RFC 7233 ``Range: bytes=...`` headers: :func:`parse_range_header`, :func:`format_range_header`.
* ``multipart/byteranges`` bodies: :func:`build_multipart`, :func:`parse_multipart`.
* The compact binary response (media type ``application/x-zflow-ranges``)::

      "ZRNG" | u32 count | count x (u64 offset, u64 length) | concatenated bytes | u32 CRC32

  little-endian; the CRC covers everything before it. Fixed per-range overhead of 16 bytes
  instead of a MIME part with headers, and end-to-end integrity in one check.

Choices where RFC 7233 leaves room (documented here, tested in tests/test_storage_backends.py):

* a syntactically invalid header (no ``bytes=``, last < first, garbage) is a **400**, not
  silently ignored as the RFC allows: a range lambda serving fragments should tell a buggy
  client rather than ship the whole fragment;
* ranges are served **in the order asked, one part per satisfiable range, not coalesced**, even
  when they overlap, so part i answers range i; unsatisfiable specs among satisfiable ones are
  dropped (RFC §4.1) and only the Content-Range of each part says which survived;
* all specs unsatisfiable -> **416** with ``Content-Range: bytes */size``;
* more than :data:`MAX_RANGES` specs, or overlapping ranges totalling more than
  ``2 * size + 64 KiB`` bytes, are refused with 416 (RFC §6.1 allows refusing such requests).

Thousands of ranges do not fit in a header (servers cap headers near 8-64 KiB), so a client may
instead ``POST`` a *range list* (media type ``application/x-zflow-range-list``: little-endian
u64 ``start, end`` pairs, end exclusive) and gets the compact body back; the Zenoh location
carries the same list in the query payload.
"""

from __future__ import annotations

import re
import secrets
import struct
from collections.abc import Sequence

import numpy as np

from storage_backends.crc import crc32

COMPACT_TYPE = "application/x-zflow-ranges"
RANGE_LIST_TYPE = "application/x-zflow-range-list"
MAX_RANGES = 4096  # in a Range header (which servers also cap at 64 KiB)
MAX_LISTED_RANGES = 1 << 20  # in a range-list body (POST / Zenoh query payload)
MAX_HEADER = 8000  # longer Range headers are sent as a range-list body instead
VERIFY_HEADER = "X-Zflow-Verify"  # request: check chunk CRCs before serving ranges
VERIFY_BAD = "X-Zflow-Bad-Chunks"  # 409 response: the chunks that failed
_HEAD = struct.Struct("<4sI")
_ENTRY = struct.Struct("<QQ")
_MAGIC = b"ZRNG"
_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class MalformedRange(ValueError):
    """The Range header does not parse (-> HTTP 400)."""


class UnsatisfiableRange(ValueError):
    """No requested range overlaps the resource (-> HTTP 416)."""


class CorruptResponse(ValueError):
    """A compact or multipart body does not parse or fails its checksum."""


def parse_range_header(value: str, size: int) -> list[tuple[int, int]]:
    """``bytes=0-50, 100-150, -500, 900-`` -> [start, end) ranges clamped to ``size``."""
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise MalformedRange(f"Range header {value!r}: expected 'bytes=first-last[, ...]'")
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        raise UnsatisfiableRange(f"Range header asks {len(parts)} ranges; at most {MAX_RANGES} served")
    out: list[tuple[int, int]] = []
    for part in parts:
        m = _SPEC.match(part)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            raise MalformedRange(f"Range header {value!r}: bad range spec {part.strip()!r}")
        first, last = m.group(1), m.group(2)
        if first == "":  # suffix: the last N bytes
            n = int(last)
            if n == 0 or size == 0:
                continue
            out.append((max(0, size - n), size))
            continue
        a = int(first)
        if last != "" and int(last) < a:
            raise MalformedRange(f"Range header {value!r}: last byte {last} before first {first}")
        if a >= size:
            continue
        b = size if last == "" else min(int(last) + 1, size)
        out.append((a, b))
    if not out:
        raise UnsatisfiableRange(f"no range of {value!r} is inside the {size}-byte resource")
    total = sum(b - a for a, b in out)
    if total > 2 * size + 65536:
        raise UnsatisfiableRange(f"ranges total {total} bytes for a {size}-byte resource (overlap)")
    return out


def pack_range_list(ranges: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(_ENTRY.pack(a, b) for a, b in ranges)


def unpack_range_list(body: bytes, size: int) -> list[tuple[int, int]]:
    """A range-list body -> [start, end) ranges, all checked against ``size`` (no clamping)."""
    if len(body) % _ENTRY.size or not body:
        raise MalformedRange(f"range list of {len(body)} bytes: expected non-empty u64 (start, end) pairs")
    count = len(body) // _ENTRY.size
    if count > MAX_LISTED_RANGES:
        raise UnsatisfiableRange(f"range list asks {count} ranges; at most {MAX_LISTED_RANGES} served")
    out = [_ENTRY.unpack_from(body, i * _ENTRY.size) for i in range(count)]
    total = 0
    for a, b in out:
        if b < a:
            raise MalformedRange(f"range [{a}, {b}) ends before it starts")
        if b > size:
            raise UnsatisfiableRange(f"range [{a}, {b}) beyond the {size}-byte resource")
        total += b - a
    if total > 2 * size + 65536:
        raise UnsatisfiableRange(f"ranges total {total} bytes for a {size}-byte resource (overlap)")
    return out


def pack_range_array(starts: np.ndarray, ends: np.ndarray) -> bytes:
    """Vectorised :func:`pack_range_list` (same bytes)."""
    pairs = np.empty((len(starts), 2), dtype="<u8")
    pairs[:, 0], pairs[:, 1] = starts, ends
    return pairs.tobytes()


def unpack_range_array(body: bytes | memoryview, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`unpack_range_list`: -> (starts, ends) int64 arrays, same checks."""
    if len(body) % _ENTRY.size or not len(body):
        raise MalformedRange(f"range list of {len(body)} bytes: expected non-empty u64 (start, end) pairs")
    count = len(body) // _ENTRY.size
    if count > MAX_LISTED_RANGES:
        raise UnsatisfiableRange(f"range list asks {count} ranges; at most {MAX_LISTED_RANGES} served")
    pairs = np.frombuffer(body, dtype="<u8").reshape(-1, 2)
    if int(pairs.max()) >= 2**62:
        raise UnsatisfiableRange(f"range list reaches past the {size}-byte resource")
    starts, ends = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    back = np.nonzero(ends < starts)[0]
    if len(back):
        i = int(back[0])
        raise MalformedRange(f"range [{starts[i]}, {ends[i]}) ends before it starts")
    far = int(np.argmax(ends))
    if int(ends[far]) > size:
        raise UnsatisfiableRange(f"range [{starts[far]}, {ends[far]}) beyond the {size}-byte resource")
    total = int((ends - starts).sum())
    if total > 2 * size + 65536:
        raise UnsatisfiableRange(f"ranges total {total} bytes for a {size}-byte resource (overlap)")
    return starts, ends


def format_range_header(ranges: Sequence[tuple[int, int]]) -> str:
    """[start, end) ranges -> ``bytes=a-b,c-d`` (inclusive ends, as HTTP wants)."""
    return "bytes=" + ",".join(f"{a}-{b - 1}" for a, b in ranges)


def pack_compact(ranges: Sequence[tuple[int, int]], datas: Sequence[bytes]) -> bytes:
    parts = [_HEAD.pack(_MAGIC, len(ranges))]
    parts += [_ENTRY.pack(a, len(d)) for (a, _b), d in zip(ranges, datas, strict=True)]
    parts += list(datas)
    body = b"".join(parts)
    return body + struct.pack("<I", crc32(body))


def _compact_count(view: memoryview) -> int:
    """Check a compact body's size, checksum and magic; -> its range count."""
    if len(view) < _HEAD.size + 4:
        raise CorruptResponse(f"compact range response too short ({len(view)} bytes)")
    (crc,) = struct.unpack_from("<I", view, len(view) - 4)
    if crc32(view[:-4]) != crc:
        raise CorruptResponse("compact range response checksum mismatch")
    magic, count = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise CorruptResponse(f"compact range response has magic {bytes(magic)!r}")
    return count


def pack_compact_array(starts: np.ndarray, ends: np.ndarray, data: np.ndarray | bytes) -> bytes:
    """Vectorised :func:`pack_compact`: ``data`` is the ranges' bytes concatenated in order."""
    entries = np.empty((len(starts), 2), dtype="<u8")
    entries[:, 0], entries[:, 1] = starts, np.asarray(ends) - np.asarray(starts)
    view = data.data if isinstance(data, np.ndarray) else memoryview(data)
    body = b"".join([_HEAD.pack(_MAGIC, len(starts)), entries.tobytes(), view.cast("B")])
    return body + struct.pack("<I", crc32(body))


def unpack_compact_array(body: bytes | memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`unpack_compact`: -> (offsets, lengths, concatenated bytes as a uint8
    view of ``body``, no copy); raises CorruptResponse on any inconsistency."""
    view = memoryview(body).cast("B")
    count = _compact_count(view)
    end = _HEAD.size + count * _ENTRY.size
    if end > len(view) - 4:
        raise CorruptResponse("compact range response lengths do not add up")
    entries = np.frombuffer(view[_HEAD.size:end], dtype="<u8").reshape(-1, 2).astype(np.int64)
    data = np.frombuffer(view[end:len(view) - 4], dtype=np.uint8)
    if int(entries[:, 1].sum()) != len(data):
        raise CorruptResponse("compact range response lengths do not add up")
    return entries[:, 0], entries[:, 1], data


def unpack_compact(body: bytes | memoryview) -> list[tuple[int, bytes]]:
    """-> [(offset, bytes)] in response order; raises CorruptResponse on any inconsistency."""
    view = memoryview(body)
    count = _compact_count(view)
    pos = _HEAD.size
    entries = []
    for _ in range(count):
        entries.append(_ENTRY.unpack_from(view, pos))
        pos += _ENTRY.size
    out = []
    for off, length in entries:
        out.append((off, bytes(view[pos:pos + length])))
        pos += length
    if pos != len(view) - 4:
        raise CorruptResponse("compact range response lengths do not add up")
    return out


def build_multipart(ranges: Sequence[tuple[int, int]], datas: Sequence[bytes], size: int,
                    content_type: str = "application/octet-stream") -> tuple[str, bytes]:
    """-> (Content-Type header value, body) of a ``multipart/byteranges`` response."""
    boundary = "zflow-" + secrets.token_hex(12)
    chunks = []
    for (a, b), data in zip(ranges, datas, strict=True):
        chunks.append(
            f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {a}-{b - 1}/{size}\r\n\r\n".encode("latin-1"))
        chunks.append(data)
    chunks.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return f"multipart/byteranges; boundary={boundary}", b"".join(chunks)


_CR = re.compile(rb"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def parse_content_range(value: str | bytes) -> tuple[int, int, int | None]:
    """``bytes a-b/size`` -> (start, end exclusive, size or None)."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    m = _CR.search(raw)
    if not m:
        raise CorruptResponse(f"bad Content-Range {value!r}")
    size = None if m.group(3) == b"*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)) + 1, size


def parse_multipart(content_type: str, body: bytes) -> list[tuple[int, bytes]]:
    """A ``multipart/byteranges`` body -> [(offset, bytes)] in part order."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise CorruptResponse(f"multipart response without boundary: {content_type!r}")
    delim = b"--" + m.group(1).encode("latin-1")
    out: list[tuple[int, bytes]] = []
    pos = body.find(delim)
    if pos < 0:
        raise CorruptResponse("multipart body has no boundary")
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return out
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise CorruptResponse("multipart part without header end")
        headers = body[pos:head_end]
        cr = None
        for line in headers.split(b"\r\n"):
            name, _, val = line.partition(b":")
            if name.strip().lower() == b"content-range":
                cr = parse_content_range(val.strip())
        if cr is None:
            raise CorruptResponse("multipart part without Content-Range")
        start, end, _size = cr
        data_start = head_end + 4
        data_end = data_start + (end - start)
        if body[data_end:data_end + 2 + len(delim)] != b"\r\n" + delim:
            raise CorruptResponse("multipart part length does not match its Content-Range")
        out.append((start, body[data_start:data_end]))
        pos = data_end + 2
