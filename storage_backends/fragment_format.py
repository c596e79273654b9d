"""The fragment container format: a fixed-size header, the payload, then a trailer of chunk checksums.

Layout (all integers little-endian)::

    [0, 512)                header: magic "ZFRG", version, fragment index, k, n, seed,
                            payload length, chunk size, coefficient row (k bytes), header CRC
    [512, 512 + L)          payload, byte x at file offset PAYLOAD_OFFSET + x
    [512 + L, T)            trailer: CRC32 of every chunk of `chunk_size` payload bytes (u32 each),
                            then u32 chunk count, u32 CRC of the table, magic "ZFRT"
    [T, T + R)              optional record piece (R in the header, 0 when absent): u32 CRC,
                            then this fragment's piece of the object record (the object's
                            catalog entry, ``catalog.pack_record``), coded like the payload

Why: the payload starts at a constant offset, so a query turns a payload byte range into a file
byte range with one addition and range-reads it without touching the rest; the checksums live
after the payload (their offset is computable from the header) so writing is one pass and
verifying a range needs only the chunks it covers. The global coefficient row is in the header
so recoded fragments are self-describing and repair needs no side metadata. The object record
makes the data describe itself too: it is coded with the fragment's own coefficient row, so each
fragment carries 1/k of it and any k fragments give it back (:func:`zflow.tsdb.coding.fragments.decode_record`) when every
replica of the object's catalog entry is lost or corrupted.

This module is the format only (no coding), so locations can verify the chunks a range read
touches next to the data; the coding side is :mod:`zflow.tsdb.coding.fragments`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from storage_backends.crc import crc32

MAGIC = b"ZFRG"
TRAILER_MAGIC = b"ZFRT"
VERSION = 1
HEADER_SIZE = 512
PAYLOAD_OFFSET = HEADER_SIZE
DEFAULT_CHUNK = 64 * 1024
_FIXED = struct.Struct("<4sBBHHHQQI")  # magic, version, flags, index, k, n, seed, length, chunk
_RECORD = struct.Struct("<I")  # object record length, right after _FIXED (zero in older fragments)
_ROW_AT = 64
_FOOT = struct.Struct("<II4s")  # chunk count, CRC of CRC table, magic


class FragmentError(ValueError):
    """The bytes are not a valid zflow fragment (bad magic, version, header checksum, size)."""


@dataclass(frozen=True)
class FragmentHeader:
    index: int
    k: int
    n: int
    seed: int
    length: int  # payload bytes
    chunk_size: int
    row: tuple[int, ...]  # global coefficient row over the k originals
    record: int = 0  # bytes of the object record after the trailer

    @property
    def chunks(self) -> int:
        return -(-self.length // self.chunk_size) if self.length else 0

    @property
    def trailer_offset(self) -> int:
        return PAYLOAD_OFFSET + self.length

    @property
    def trailer_size(self) -> int:
        return 4 * self.chunks + _FOOT.size

    @property
    def file_size(self) -> int:
        """End of the trailer (where the object record, if any, starts)."""
        return self.trailer_offset + self.trailer_size

    @property
    def total_size(self) -> int:
        return self.file_size + self.record

    def file_range(self, start: int, end: int) -> tuple[int, int]:
        """Payload [start, end) -> file [start, end)."""
        if not 0 <= start <= end <= self.length:
            raise ValueError(f"payload range [{start}, {end}) outside [0, {self.length})")
        return PAYLOAD_OFFSET + start, PAYLOAD_OFFSET + end

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        """Payload [start, end) of chunk ``chunk``."""
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.length)

    def chunks_covering(self, start: int, end: int) -> range:
        if end <= start:
            return range(0)
        return range(start // self.chunk_size, (end - 1) // self.chunk_size + 1)

    def pack(self) -> bytes:
        if len(self.row) != self.k:
            raise FragmentError(f"coefficient row has {len(self.row)} entries, k={self.k}")
        buf = bytearray(HEADER_SIZE)
        _FIXED.pack_into(buf, 0, MAGIC, VERSION, 0, self.index, self.k, self.n, self.seed,
                         self.length, self.chunk_size)
        _RECORD.pack_into(buf, _FIXED.size, self.record)
        buf[_ROW_AT:_ROW_AT + self.k] = bytes(self.row)
        struct.pack_into("<I", buf, HEADER_SIZE - 4, crc32(bytes(buf[: HEADER_SIZE - 4])))
        return bytes(buf)

    @staticmethod
    def parse(data: bytes | bytearray | memoryview) -> FragmentHeader:
        head = bytes(data[:HEADER_SIZE])
        if len(head) < HEADER_SIZE:
            raise FragmentError(f"fragment is {len(head)} bytes, shorter than its {HEADER_SIZE}-byte header")
        magic, version, _flags, index, k, n, seed, length, chunk = _FIXED.unpack_from(head, 0)
        if magic != MAGIC:
            raise FragmentError(f"not a zflow fragment (magic {magic!r}, expected {MAGIC!r})")
        if version != VERSION:
            raise FragmentError(f"fragment version {version} is not supported (expected {VERSION})")
        (crc,) = struct.unpack_from("<I", head, HEADER_SIZE - 4)
        if crc != crc32(head[: HEADER_SIZE - 4]):
            raise FragmentError("fragment header checksum mismatch (header corrupted)")
        if chunk <= 0 or not (1 <= k <= n):
            raise FragmentError(f"fragment header has bad fields: k={k} n={n} chunk={chunk}")
        row = tuple(head[_ROW_AT:_ROW_AT + k])
        (record,) = _RECORD.unpack_from(head, _FIXED.size)
        return FragmentHeader(index, k, n, seed, length, chunk, row, record)


def chunk_crcs(payload: Any, chunk_size: int) -> np.ndarray:
    view = memoryview(payload).cast("B")
    count = -(-len(view) // chunk_size) if len(view) else 0
    return np.array([crc32(view[i * chunk_size:(i + 1) * chunk_size]) for i in range(count)],
                    dtype="<u4")


def fragment_size(length: int, chunk_size: int) -> int:
    """Bytes of a fragment of ``length`` payload bytes, without its object record."""
    return PAYLOAD_OFFSET + length + 4 * (-(-length // chunk_size) if length else 0) + _FOOT.size


RECORD_LEN = struct.Struct("<I")


def seal_piece(piece: np.ndarray) -> bytes:
    """A record piece as stored after the trailer: CRC32 of its bytes, then the bytes."""
    body = piece.tobytes()
    return RECORD_LEN.pack(crc32(body)) + body


def piece_body(piece: bytes) -> np.ndarray | None:
    """The bytes of a record piece, or None when its checksum fails (or there is none)."""
    if len(piece) < 4 or crc32(piece[4:]) != RECORD_LEN.unpack_from(piece)[0]:
        return None
    return np.frombuffer(piece, dtype=np.uint8, offset=4)


def pack_fragment(index: int, payload: Any, row: Any, *, n: int, seed: int = 0,
                  chunk_size: int = DEFAULT_CHUNK, record: bytes = b"") -> bytes:
    """Header + payload + checksum trailer (+ object record), ready for ``FragmentStore.put``."""
    buf: Any = np.ascontiguousarray(payload, dtype=np.uint8) if isinstance(payload, np.ndarray) else payload
    view = memoryview(buf).cast("B")
    row_t = tuple(int(x) for x in np.asarray(row, dtype=np.uint8))
    header = FragmentHeader(index, len(row_t), n, seed, len(view), chunk_size, row_t, len(record))
    crcs = chunk_crcs(view, chunk_size)
    return b"".join([header.pack(), view, seal_trailer(crcs.tobytes()), record])


def seal_trailer(table: bytes) -> bytes:
    """The trailer for a chunk CRC table (u32 per chunk): the table, its count, CRC and magic."""
    return table + _FOOT.pack(len(table) // 4, crc32(table), TRAILER_MAGIC)


def parse_trailer(header: FragmentHeader, trailer: bytes | memoryview) -> np.ndarray:
    """The chunk CRC table from the trailer bytes (``header.trailer_size`` of them)."""
    trailer = bytes(trailer)
    if len(trailer) != header.trailer_size:
        raise FragmentError(f"trailer is {len(trailer)} bytes, expected {header.trailer_size}")
    count, crc, magic = _FOOT.unpack_from(trailer, len(trailer) - _FOOT.size)
    table = trailer[: 4 * header.chunks]
    if magic != TRAILER_MAGIC or count != header.chunks or crc != crc32(table):
        raise FragmentError("fragment trailer corrupted (checksum table unreadable)")
    return np.frombuffer(table, dtype="<u4")


@dataclass
class Fragment:
    """A parsed fragment: header, payload view, chunk CRC table."""

    header: FragmentHeader
    payload: memoryview
    crcs: np.ndarray
    record: bytes = b""  # this fragment's piece of the object record (CRC32 + bytes), if any

    @property
    def row(self) -> np.ndarray:
        return np.array(self.header.row, dtype=np.uint8)


def unpack_fragment(data: bytes | bytearray | memoryview) -> Fragment:
    view = memoryview(data).cast("B")
    header = FragmentHeader.parse(view)
    if len(view) != header.total_size:
        raise FragmentError(f"fragment is {len(view)} bytes, header says {header.total_size}")
    payload = view[PAYLOAD_OFFSET:header.trailer_offset]
    crcs = parse_trailer(header, view[header.trailer_offset:header.file_size])
    return Fragment(header, payload, crcs, bytes(view[header.file_size:]))


def verify_chunks(fragment_bytes: bytes | bytearray | memoryview) -> list[int]:
    """Indices of payload chunks whose CRC32 does not match (empty list = intact); a record
    piece that fails its CRC counts as one more chunk, index ``header.chunks``."""
    frag = unpack_fragment(fragment_bytes)
    got = chunk_crcs(frag.payload, frag.header.chunk_size)
    bad = [int(i) for i in np.nonzero(got != frag.crcs)[0]]
    if frag.header.record and piece_body(frag.record) is None:
        bad.append(frag.header.chunks)
    return bad


def verify_range(header: FragmentHeader, crcs: np.ndarray, start: int, data: Any) -> list[int]:
    """Bad chunks among those FULLY inside payload [start, start+len(data)) (for range reads)."""
    view = memoryview(data).cast("B")
    end = start + len(view)
    bad = []
    for c in header.chunks_covering(start, end):
        cs, ce = header.chunk_range(c)
        if cs >= start and ce <= end and crc32(view[cs - start:ce - start]) != int(crcs[c]):
            bad.append(c)
    return bad


def touched_chunks(header: FragmentHeader, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sorted indices of the payload chunks any FILE byte range [starts[i], ends[i]) touches
    (vectorised: a difference array over chunks, no per-range loop)."""
    lo, hi, c = PAYLOAD_OFFSET, header.trailer_offset, header.chunk_size
    m = (ends > lo) & (starts < hi) & (ends > starts)
    if not m.any():
        return np.zeros(0, dtype=np.int64)
    a = np.maximum(starts[m], lo) - lo
    b = np.minimum(ends[m], hi) - lo
    n = header.chunks
    mark = np.bincount(a // c, minlength=n + 1) - np.bincount((b - 1) // c + 1, minlength=n + 1)
    return np.nonzero(np.cumsum(mark)[:n] > 0)[0].astype(np.int64)


def bad_chunks_for_ranges(read: Callable[[list[tuple[int, int]]], list[bytes]],
                          ranges: list[tuple[int, int]]) -> list[int]:
    """Chunks touched by FILE byte ranges whose CRC fails, reading through ``read(ranges)``.

    Three reads: the header, the trailer, then every payload chunk any range touches (whole
    chunks, since a CRC covers a whole chunk). A corrupted header or trailer raises
    :class:`FragmentError`. This is what makes a range read *verified*: the location runs it next
    to the data and refuses to serve bytes from a chunk that fails its checksum.
    """
    header = FragmentHeader.parse(read([(0, HEADER_SIZE)])[0])
    crcs = parse_trailer(header, read([(header.trailer_offset, header.file_size)])[0])
    lo, hi = PAYLOAD_OFFSET, header.trailer_offset
    touched = sorted({c for a, b in ranges if b > lo and a < hi
                      for c in header.chunks_covering(max(a, lo) - lo, min(b, hi) - lo)})
    if not touched:
        return []
    spans = [(lo + a, lo + b) for a, b in (header.chunk_range(c) for c in touched)]
    return [c for c, d in zip(touched, read(spans), strict=True) if crc32(d) != int(crcs[c])]


def fragment_rows(blobs: Mapping[int, bytes | bytearray | memoryview]) -> dict[int, np.ndarray]:
    """Coefficient rows from fragment headers (for ``rlnc.decode_ranges(..., rows=...)``)."""
    return {i: np.array(FragmentHeader.parse(b).row, dtype=np.uint8) for i, b in blobs.items()}
