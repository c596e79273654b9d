"""The metadata catalog, replicated to every location.

Entries: ``{dataset}/catalog/schema`` (schema, location names, coding parameters) and one
``{dataset}/catalog/obj/{object_id}`` per sealed object (row count, layout, per-column dedup
split, base dictionary, min/max keys, fragment -> location map). Each entry is msgpack
(numpy arrays via :mod:`zflow.codec`) behind a CRC32, written to *every* location, so any
single surviving location holds the whole catalog: losing n-k locations loses no metadata
(replication costs little here — the catalog is a few KB per object, against MBs of data).
Loading takes the union of entries over the locations that answer.

Every fragment also ends with a piece of its object's entry (the *object record*, deflated
and coded like the data: any k fragments give it back, see :mod:`storage_backends.fragment_format`), so an
entry whose replicas are all corrupted or gone is read back from the data; an object listed in the catalog that neither a replica nor a fragment can
describe is *lost* (``Catalog.lost``), and queries refuse to answer without it by default.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from storage_backends.base import StoreError
from storage_backends.fragment_format import HEADER_SIZE, FragmentError, FragmentHeader
from zflow import codec
from zflow.errors import RuntimeFailure
from zflow.tsdb.dedup.generalized import Trend, join_keys, trend_keys
from zflow.tsdb.layout.object_layout import ObjectLayout
from zflow.tsdb.schema import Schema

_CRC = struct.Struct("<I")


def schema_key(ds: str) -> str:
    return f"{ds}/catalog/schema"


def object_key(ds: str, oid: str) -> str:
    return f"{ds}/catalog/obj/{oid}"


def fragment_key(ds: str, oid: str, index: int) -> str:
    return f"{ds}/obj/{oid}/{index}"


def pack_entry(value: Any) -> bytes:
    body, _ = codec.encode(value)
    return _CRC.pack(zlib.crc32(body)) + body


def pack_record(value: Any) -> bytes:
    """An entry as fragments carry it: deflated (entries are mostly small integer arrays, ~6x
    smaller), so the copy in every fragment costs a few KB."""
    body = zlib.compress(codec.encode(value)[0], 6)
    return _CRC.pack(zlib.crc32(body)) + body


def unpack_record(data: bytes) -> Any | None:
    """A record's entry, or None when its checksum does not match."""
    if len(data) < 4 or zlib.crc32(data[4:]) != _CRC.unpack_from(data)[0]:
        return None
    return codec.decode(zlib.decompress(data[4:]), codec.MSGPACK)


def unpack_entry(data: bytes) -> Any | None:
    """The entry, or None when its checksum does not match (a corrupted replica)."""
    if len(data) < 4:
        return None
    (crc,) = _CRC.unpack_from(data)
    body = data[4:]
    if zlib.crc32(body) != crc:
        return None
    return codec.decode(body, codec.MSGPACK)


@dataclass
class ColumnMeta:
    dev_bits: int
    bases: np.ndarray  # sorted unique bases (uint64)
    min_key: int
    max_key: int
    width: int = 64  # bits of the value the split applies to (the key, or the trend residual)
    trend: Trend | None = None

    def keys(self, ids: np.ndarray, dev: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Order-preserving keys of ``rows`` from their base ids and deviations."""
        v = join_keys(ids, dev, self.bases, self.dev_bits)
        return v if self.trend is None else trend_keys(v, rows, self.trend, self.min_key)

    @property
    def dict_bits(self) -> int:
        return len(self.bases) * (self.width - self.dev_bits)

    def to_dict(self) -> dict:
        return {"dev_bits": self.dev_bits, "bases": self.bases, "min_key": self.min_key,
                "max_key": self.max_key, "width": self.width,
                "trend": self.trend.to_list() if self.trend else None}

    @classmethod
    def from_dict(cls, d: dict) -> ColumnMeta:
        trend = Trend.from_list(d["trend"]) if d.get("trend") else None
        return cls(d["dev_bits"], np.asarray(d["bases"], dtype=np.uint64), d["min_key"], d["max_key"],
                   d.get("width", 64), trend)


@dataclass
class ObjectMeta:
    oid: str
    n_rows: int
    layout: ObjectLayout
    columns: dict[str, ColumnMeta]
    placement: list[int]  # fragment index -> location index
    fragment_bytes: int = 0  # stored size of one fragment (header + payload + trailer)

    def to_dict(self) -> dict:
        return {"oid": self.oid, "n_rows": self.n_rows, "layout": self.layout.to_dict(),
                "columns": {k: v.to_dict() for k, v in self.columns.items()},
                "placement": self.placement, "fragment_bytes": self.fragment_bytes}

    @classmethod
    def from_dict(cls, d: dict) -> ObjectMeta:
        return cls(d["oid"], d["n_rows"], ObjectLayout.from_dict(d["layout"]),
                   {k: ColumnMeta.from_dict(v) for k, v in d["columns"].items()},
                   list(d["placement"]), d.get("fragment_bytes", 0))

    def record(self) -> bytes:
        """The object record the fragments carry, coded: this entry, with ``fragment_bytes``
        left to the fragment header (it would count the record itself)."""
        return pack_record({**self.to_dict(), "fragment_bytes": 0})


@dataclass
class Catalog:
    schema: Schema
    locations: list[str]
    objects: dict[str, ObjectMeta] = field(default_factory=dict)
    # object id -> why its entry could not be read anywhere (its rows are missing from queries)
    lost: dict[str, str] = field(default_factory=dict)
    # object ids whose every catalog replica was bad, read back from a fragment's object record
    recovered: list[str] = field(default_factory=list)

    def header(self) -> dict:
        return {"schema": self.schema.model_dump(mode="json"), "locations": self.locations}

    def sorted_objects(self) -> list[ObjectMeta]:
        return [self.objects[k] for k in sorted(self.objects)]


def write_entry(stores: list, key: str, value: Any) -> list[str]:
    """Write an entry to every location; names of locations that failed."""
    blob = pack_entry(value)
    failed = []
    for s in stores:
        try:
            s.put(key, blob)
        except (StoreError, OSError):
            failed.append(s.name)
    if len(failed) == len(stores):
        raise RuntimeFailure(f"catalog entry {key}: no location accepted it ({', '.join(failed)})")
    return failed


def read_record(stores: list, dataset: str, oid: str) -> ObjectMeta | None:
    """An object's entry decoded from the record pieces its fragments carry (None: fewer than
    k intact pieces). Two small range reads per fragment: the header, then the piece."""
    from zflow.tsdb.coding.fragments import decode_record

    pieces: dict[int, tuple[tuple[int, ...], bytes]] = {}
    k = size = 0
    for s in stores:
        try:
            keys = s.list(f"{dataset}/obj/{oid}/")
        except (StoreError, OSError):
            continue
        for key in keys:
            try:
                head = FragmentHeader.parse(s.get_ranges(key, [(0, HEADER_SIZE)])[0])
                if head.record:
                    pieces[head.index] = (head.row, s.get_ranges(key, [(head.file_size, head.total_size)])[0])
                    k, size = head.k, head.total_size
            except (StoreError, OSError, FragmentError):
                continue
    if not k or len(pieces) < k:
        return None
    try:
        record = decode_record(pieces)
        value = unpack_record(record) if record is not None else None
        if value is None or value.get("oid") != oid:
            return None
        meta = ObjectMeta.from_dict(value)
    except (KeyError, TypeError, ValueError, zlib.error):
        return None
    meta.fragment_bytes = size
    return meta


def load(stores: list, dataset: str, header_fallback: dict | None = None) -> Catalog:
    """The catalog from whichever locations answer (union of entries, checksums verified;
    entries bad on every location read back from their fragments, else listed as lost).
    ``header_fallback`` stands in for a header unreadable everywhere (repair, from the config)."""
    header = None
    keys: dict[str, list] = {}
    live = []
    for s in stores:
        try:
            names = s.list(f"{dataset}/catalog/")
        except (StoreError, OSError):
            continue
        live.append(s)
        for key in names:
            keys.setdefault(key, []).append(s)
    if not live:
        raise RuntimeFailure(f"dataset '{dataset}': no location answered")
    entries: dict[str, Any] = {}
    bad: dict[str, str] = {}
    for key, holders in keys.items():
        reasons = []
        for s in holders:
            try:
                value = unpack_entry(s.get(key))
            except (StoreError, OSError) as exc:
                reasons.append(f"{s.name}: {exc}")
                continue
            if value is not None:
                entries[key] = value
                break
            reasons.append(f"{s.name}: checksum mismatch")
        else:
            bad[key] = "; ".join(reasons)
    skey = schema_key(dataset)
    header = entries.pop(skey, None)
    if header is None:
        where = ", ".join(s.name for s in live)
        if skey in bad and header_fallback is not None:
            header = header_fallback
        elif skey in bad:
            raise RuntimeFailure(f"dataset '{dataset}': its catalog header is unreadable on every "
                                 f"location ({bad[skey]}); `zflow tsdb repair` rewrites it from the config")
        else:
            raise RuntimeFailure(f"dataset '{dataset}' not found at {where}")
    cat = Catalog(Schema.model_validate(header["schema"]), list(header["locations"]))
    prefix = f"{dataset}/catalog/obj/"
    for key, value in entries.items():
        if key.startswith(prefix):
            try:
                meta = ObjectMeta.from_dict(value)
            except (KeyError, TypeError, ValueError) as exc:
                bad[key] = f"unreadable entry ({type(exc).__name__}: {exc})"
                continue
            cat.objects[meta.oid] = meta
    if header is header_fallback:
        c = cat.schema.coding
        odd = [m.oid for m in cat.objects.values() if m.layout.k != c.k or len(m.placement) != c.n]
        if odd:
            raise RuntimeFailure(f"dataset '{dataset}': its catalog header is unreadable everywhere and the "
                                 f"config's coding (k={c.k}, n={c.n}) differs from the stored objects' "
                                 f"(object {odd[0]}); restore the original schema in the config, then repair")
    for key, why in sorted(bad.items()):
        if not key.startswith(prefix):
            continue
        oid = key[len(prefix):]
        recovered = read_record(live, dataset, oid)
        if recovered is None:
            cat.lost[oid] = f"catalog entry bad on every location ({why}) and no fragment record readable"
        else:
            cat.objects[oid] = recovered
            cat.recovered.append(oid)
    return cat
