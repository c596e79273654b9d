"""Coding operations on fragments: seal an object into n fragments, code its record, repair.

The container format itself (header, trailer, chunk checksums) is
:mod:`storage_backends.fragment_format`, shared with the locations that verify ranges next to
the data; this module adds what needs the code (RLNC over GF(2^8)): encoding k data rows into n
fragments, the object record coded like the payload, and rebuilding or recoding a fragment from
k others without decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from storage_backends.crc import crc32
from storage_backends.fragment_format import (
    DEFAULT_CHUNK,
    HEADER_SIZE,
    PAYLOAD_OFFSET,
    RECORD_LEN,
    Fragment,
    FragmentError,
    FragmentHeader,
    chunk_crcs,
    fragment_size,
    pack_fragment,
    piece_body,
    seal_piece,
    seal_trailer,
    unpack_fragment,
    verify_chunks,
)
from zflow.tsdb.coding.gf256 import matmul_region
from zflow.tsdb.coding.rlnc import CodingParams, combine_ranges, decode_ranges, encode, recode


def code_record(record: bytes, params: Any) -> list[bytes]:
    """An object record as n pieces coded like the payload (piece i belongs to fragment i)."""
    buf = RECORD_LEN.pack(len(record)) + record
    width = -(-len(buf) // params.k)
    data = np.zeros(params.k * width, dtype=np.uint8)
    data[:len(buf)] = np.frombuffer(buf, dtype=np.uint8)
    data = data.reshape(params.k, width)
    return [seal_piece(r) for r in [*data, *encode(data, params)]]


def decode_record(pieces: Mapping[int, tuple[Any, bytes]]) -> bytes | None:
    """The object record from fragment index -> (coefficient row, piece); None without k intact
    pieces of one length."""
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
    size = RECORD_LEN.unpack_from(buf)[0]
    return buf[4:4 + size] if size <= len(buf) - 4 else None


def combine_record(others: Mapping[int, Fragment], row: Any) -> bytes:
    """The record piece for coefficient ``row`` from k other fragments' pieces (b"" without k
    intact ones): regenerated like the payload, no decode."""
    good = {i: b for i, f in others.items() if (b := piece_body(f.record)) is not None}
    widths = {len(b) for b in good.values()}
    k = len(np.asarray(row))
    if len(good) < k or len(widths) != 1:
        return b""
    return seal_piece(combine_ranges(good, np.asarray(row, dtype=np.uint8),
                                      rows={i: others[i].row for i in good}))


def repair_chunks(fragment_bytes: bytes | bytearray | memoryview,
                  others: Mapping[int, bytes | bytearray | memoryview],
                  bad: list[int] | None = None) -> bytes:
    """Rebuild corrupted chunks of a fragment from the same chunk ranges of k other fragments.

    ``others`` maps fragment index -> whole fragment bytes of other fragments of the same
    object (their own corrupted chunks are skipped for that range; at least k good ones per
    chunk are needed). Returns the repaired fragment; coefficient rows come from the headers.
    """
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
            span = f.payload[cs:ce]
            if crc32(span) != int(f.crcs[c]):
                continue
            avail[i] = np.frombuffer(span, dtype=np.uint8)
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
    data = np.asarray(data, dtype=np.uint8)
    k, n = params.k, params.n
    if data.ndim != 2 or data.shape[0] != k:
        raise ValueError(f"expected data of shape (k={k}, L), got {data.shape}")
    length = int(data.shape[1])
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
        blob[PAYLOAD_OFFSET + length:] = (seal_trailer(chunk_crcs(payloads[i], chunk_size).tobytes())
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
    it decodes like any other fragment (see :func:`zflow.tsdb.coding.rlnc.recode`).
    """
    parsed = {i: unpack_fragment(b) for i, b in sources.items()}
    if not parsed:
        raise FragmentError("recoding needs at least one source fragment")
    h = next(iter(parsed.values())).header
    frag, row = recode({i: np.frombuffer(f.payload, dtype=np.uint8) for i, f in parsed.items()},
                       {i: f.row for i, f in parsed.items()}, new_seed)
    return pack_fragment(index, frag, row, n=h.n, seed=h.seed, chunk_size=h.chunk_size,
                         record=combine_record(parsed, row))
