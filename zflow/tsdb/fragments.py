"""The fragment container: a fixed-size header, the payload, then a trailer of chunk checksums.

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
fragment carries 1/k of it and any k fragments give it back (:func:`decode_record`) when every
replica of the object's catalog entry is lost or corrupted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zflow.tsdb.crc import crc32

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


_LEN = struct.Struct("<I")


def _seal_piece(piece: np.ndarray) -> bytes:
    body = piece.tobytes()
    return _LEN.pack(crc32(body)) + body


def piece_body(piece: bytes) -> np.ndarray | None:
    """The bytes of a record piece, or None when its checksum fails (or there is none)."""
    if len(piece) < 4 or crc32(piece[4:]) != _LEN.unpack_from(piece)[0]:
        return None
    return np.frombuffer(piece, dtype=np.uint8, offset=4)


def code_record(record: bytes, params: Any) -> list[bytes]:
    """An object record as n pieces coded like the payload (piece i belongs to fragment i)."""
    from zflow.tsdb.rlnc import encode

    buf = _LEN.pack(len(record)) + record
    width = -(-len(buf) // params.k)
    data = np.zeros(params.k * width, dtype=np.uint8)
    data[:len(buf)] = np.frombuffer(buf, dtype=np.uint8)
    data = data.reshape(params.k, width)
    return [_seal_piece(r) for r in [*data, *encode(data, params)]]


def decode_record(pieces: Mapping[int, tuple[Any, bytes]]) -> bytes | None:
    """The object record from fragment index -> (coefficient row, piece); None without k intact
    pieces of one length."""
    from zflow.tsdb.rlnc import decode_ranges

    good = {i: (row, b) for i, (row, p) in pieces.items() if (b := piece_body(p)) is not None}
    if not good:
        return None
    k = len(next(iter(good.values()))[0])
    width = len(next(iter(good.values()))[1])
    good = {i: v for i, v in good.items() if len(v[1]) == width}
    if len(good) < k:
        return None
    data = decode_ranges({i: b for i, (_, b) in good.items()},
                         rows={i: np.asarray(r, dtype=np.uint8) for i, (r, _) in good.items()}, want=list(range(k)))
    buf = b"".join(data[j].tobytes() for j in range(k))
    size = _LEN.unpack_from(buf)[0]
    return buf[4:4 + size] if size <= len(buf) - 4 else None


def combine_record(others: Mapping[int, Fragment], row: Any) -> bytes:
    """The record piece for coefficient ``row`` from k other fragments' pieces (b"" without k
    intact ones): regenerated like the payload, no decode."""
    from zflow.tsdb.rlnc import combine_ranges

    good = {i: b for i, f in others.items() if (b := piece_body(f.record)) is not None}
    widths = {len(b) for b in good.values()}
    k = len(np.asarray(row))
    if len(good) < k or len(widths) != 1:
        return b""
    return _seal_piece(combine_ranges(good, np.asarray(row, dtype=np.uint8),
                                      rows={i: others[i].row for i in good}))


def pack_fragment(index: int, payload: Any, row: Any, *, n: int, seed: int = 0,
                  chunk_size: int = DEFAULT_CHUNK, record: bytes = b"") -> bytes:
    """Header + payload + checksum trailer (+ object record), ready for ``FragmentStore.put``."""
    buf: Any = np.ascontiguousarray(payload, dtype=np.uint8) if isinstance(payload, np.ndarray) else payload
    view = memoryview(buf).cast("B")
    row_t = tuple(int(x) for x in np.asarray(row, dtype=np.uint8))
    header = FragmentHeader(index, len(row_t), n, seed, len(view), chunk_size, row_t, len(record))
    crcs = chunk_crcs(view, chunk_size)
    table = crcs.tobytes()
    foot = _FOOT.pack(len(crcs), crc32(table), TRAILER_MAGIC)
    return b"".join([header.pack(), view, table, foot, record])


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


def repair_chunks(fragment_bytes: bytes | bytearray | memoryview,
                  others: Mapping[int, bytes | bytearray | memoryview],
                  bad: list[int] | None = None) -> bytes:
    """Rebuild corrupted chunks of a fragment from the same chunk ranges of k other fragments.

    ``others`` maps fragment index -> whole fragment bytes of other fragments of the same
    object (their own corrupted chunks are skipped for that range; at least k good ones per
    chunk are needed). Returns the repaired fragment; coefficient rows come from the headers.
    """
    from zflow.tsdb.rlnc import combine_ranges

    frag = unpack_fragment(fragment_bytes)
    h = frag.header
    if bad is None:
        bad = verify_chunks(fragment_bytes)
    if not bad:
        return bytes(fragment_bytes)
    parsed = {i: unpack_fragment(b) for i, b in others.items() if i != h.index}
    out = bytearray(fragment_bytes)
    for c in bad:
        if c == h.chunks:  # the record piece, regenerated from k others' pieces
            piece = combine_record(parsed, frag.row)
            if len(piece) != h.record:
                raise FragmentError(f"cannot repair the record piece of fragment {h.index}: "
                                    f"fewer than k={h.k} intact pieces in the other fragments")
            out[h.file_size:] = piece
            continue
        cs, ce = h.chunk_range(c)
        avail = {}
        rows = {}
        for i, f in parsed.items():
            if f.header.length != h.length or f.header.chunk_size != h.chunk_size:
                continue
            piece = f.payload[cs:ce]
            if crc32(piece) != int(f.crcs[c]):
                continue
            avail[i] = np.frombuffer(piece, dtype=np.uint8)
            rows[i] = f.row
        if len(avail) < h.k:
            raise FragmentError(
                f"cannot repair chunk {c} of fragment {h.index}: only {len(avail)} intact "
                f"fragments for that range, need k={h.k}")
        fixed = combine_ranges(avail, frag.row, rows=rows)
        if crc32(fixed.tobytes()) != int(frag.crcs[c]):
            raise FragmentError(f"repaired chunk {c} of fragment {h.index} does not match its checksum")
        out[PAYLOAD_OFFSET + cs:PAYLOAD_OFFSET + ce] = fixed.tobytes()
    return bytes(out)


def make_fragments(data: np.ndarray, params: Any, chunk_size: int = DEFAULT_CHUNK,
                   records: Sequence[bytes] = ()) -> list[bytearray]:
    """Encode (k, L) data and pack all n fragments (index i at position i), fragment i ending
    with ``records[i]`` (its piece of the object record, :func:`code_record`; all one length).

    Each fragment is built in place in one buffer: data rows are copied into their payload
    slots and the coded rows are written straight into theirs by the kernel (no temporary
    coded array, no join).
    """
    from zflow.tsdb.gf256 import matmul_region

    data = np.asarray(data, dtype=np.uint8)
    k, n = params.k, params.n
    if data.ndim != 2 or data.shape[0] != k:
        raise ValueError(f"expected data of shape (k={k}, L), got {data.shape}")
    length = int(data.shape[1])
    chunks = -(-length // chunk_size) if length else 0
    size = fragment_size(length, chunk_size)
    if records and (len(records) != n or len({len(r) for r in records}) != 1):
        raise ValueError(f"expected {n} record pieces of one length")
    rlen = len(records[0]) if records else 0
    blobs = [bytearray(size + rlen) for _ in range(n)]
    payloads = [np.frombuffer(b, dtype=np.uint8)[PAYLOAD_OFFSET:PAYLOAD_OFFSET + length] for b in blobs]
    for i in range(k):
        payloads[i][:] = data[i]
    if n > k and length:
        matmul_region(params.coefficients(), data, out=payloads[k:])
    for i, blob in enumerate(blobs):
        row = tuple(int(x) for x in params.row(i))
        blob[:HEADER_SIZE] = FragmentHeader(i, k, n, params.seed, length, chunk_size, row, rlen).pack()
        table = chunk_crcs(payloads[i], chunk_size).tobytes()
        blob[PAYLOAD_OFFSET + length:] = (table + _FOOT.pack(chunks, crc32(table), TRAILER_MAGIC)
                                          + (records[i] if records else b""))
    del payloads  # release the buffer exports
    return blobs


def rebuild_fragment(index: int, others: Mapping[int, bytes | bytearray | memoryview],
                     row: Any = None) -> bytes:
    """A whole lost fragment (data or coded) rebuilt from k intact others, ready to store.

    ``row`` is the lost fragment's coefficient row (default: from the coding parameters in the
    others' headers, i.e. as originally generated). Only the sources' payload bytes are combined;
    nothing is decoded to plain data unless the lost fragment is a data fragment.
    """
    from zflow.tsdb.rlnc import CodingParams, combine_ranges

    parsed = {i: unpack_fragment(b) for i, b in others.items() if i != index}
    if not parsed:
        raise FragmentError(f"no fragments to rebuild fragment {index} from")
    h = next(iter(parsed.values())).header
    params = CodingParams(h.k, h.n, h.seed)
    target = params.row(index) if row is None else np.asarray(row, dtype=np.uint8)
    avail = {i: np.frombuffer(f.payload, dtype=np.uint8) for i, f in parsed.items()}
    rows = {i: f.row for i, f in parsed.items()}
    payload = combine_ranges(avail, target, rows=rows)
    return pack_fragment(index, payload, target, n=h.n, seed=h.seed, chunk_size=h.chunk_size,
                         record=combine_record(parsed, target))


def recode_fragment(index: int, sources: Mapping[int, bytes | bytearray | memoryview],
                    new_seed: int) -> bytes:
    """A NEW coded fragment (repair without decoding): a random combination of ``sources``.

    Its global coefficient row is computed from the sources' rows and stored in its header, so
    it decodes like any other fragment (see :func:`zflow.tsdb.rlnc.recode`).
    """
    from zflow.tsdb.rlnc import recode

    parsed = {i: unpack_fragment(b) for i, b in sources.items()}
    if not parsed:
        raise FragmentError("recoding needs at least one source fragment")
    h = next(iter(parsed.values())).header
    frag, row = recode({i: np.frombuffer(f.payload, dtype=np.uint8) for i, f in parsed.items()},
                       {i: f.row for i, f in parsed.items()}, new_seed)
    return pack_fragment(index, frag, row, n=h.n, seed=h.seed, chunk_size=h.chunk_size,
                         record=combine_record(parsed, row))


def fragment_rows(blobs: Mapping[int, bytes | bytearray | memoryview]) -> dict[int, np.ndarray]:
    """Coefficient rows from fragment headers (for ``rlnc.decode_ranges(..., rows=...)``)."""
    return {i: np.array(FragmentHeader.parse(b).row, dtype=np.uint8) for i, b in blobs.items()}
