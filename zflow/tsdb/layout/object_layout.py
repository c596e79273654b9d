"""Column-major layout of a sealed object over k equal data fragments.

An object's data is the concatenation of its *sub-columns* in schema order (per column: the
dedup base-id stream, then the deviation stream; see :mod:`zflow.tsdb.dedup.generalized`), each a
bit-packed stream of fixed-width values (:mod:`zflow.tsdb.layout.bitpack`). The data is cut into
``k`` data fragments of ``frag_size`` bytes each; global byte ``g`` lives in fragment
``g // frag_size`` at offset ``g % frag_size`` (the tail is zero padding).

No value straddles a fragment boundary: a sub-column is placed as *segments*, each inside one
fragment and each starting at a row that is a multiple of 8 (8 values of ``b`` bits are
exactly ``b`` bytes, so every segment starts on a byte boundary). When a sub-column reaches a
fragment's end, the rows that would cross it start the next fragment and the gap is padding.

Address of value (row ``i``, sub-column ``s``): find the segment ``j`` with
``row0_j <= i < row0_j + rows_j``; its bits start at global bit
``8 * offset_j + (i - row0_j) * bits_s``; fragment ``= offset_j // frag_size``. Equivalently
the sub-column's *stream* byte ``t`` (``t = i * bits // 8``) maps to global byte
``offset_j + t - row0_j * bits // 8``, which :meth:`SubColumn.stream_to_global` computes for
whole byte ranges, splitting them at segment edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zflow.tsdb.layout.bitpack import packed_size


@dataclass
class SubColumn:
    name: str  # "<column>" + ".base" / ".dev"
    bits: int
    n_rows: int
    segments: list[tuple[int, int, int]] = field(default_factory=list)  # (row0, rows, global offset)

    @property
    def stream_size(self) -> int:
        return packed_size(self.n_rows, self.bits)

    def stream_to_global(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Stream bytes ``[start, end)`` -> list of ``(stream_start, global_start, length)``."""
        out = []
        for row0, rows, off in self.segments:
            s0 = row0 * self.bits // 8
            s1 = s0 + packed_size(rows, self.bits)
            a, b = max(start, s0), min(end, s1)
            if a < b:
                out.append((a, off + (a - s0), b - a))
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "bits": self.bits, "n_rows": self.n_rows, "segments": self.segments}

    @classmethod
    def from_dict(cls, d: dict) -> SubColumn:
        return cls(d["name"], d["bits"], d["n_rows"], [tuple(s) for s in d["segments"]])


@dataclass
class ObjectLayout:
    n_rows: int
    k: int
    frag_size: int
    subcolumns: dict[str, SubColumn]

    @property
    def data_bytes(self) -> int:
        return sum(s.stream_size for s in self.subcolumns.values())

    def address(self, sub: str, row: int) -> tuple[int, int]:
        """(fragment index, offset in fragment) of the first byte of a value."""
        sc = self.subcolumns[sub]
        for row0, rows, off in sc.segments:
            if row0 <= row < row0 + rows:
                g = off + (row - row0) * sc.bits // 8
                return g // self.frag_size, g % self.frag_size
        raise IndexError(row)

    def to_dict(self) -> dict:
        return {"n_rows": self.n_rows, "k": self.k, "frag_size": self.frag_size,
                "subcolumns": [s.to_dict() for s in self.subcolumns.values()]}

    @classmethod
    def from_dict(cls, d: dict) -> ObjectLayout:
        subs = [SubColumn.from_dict(s) for s in d["subcolumns"]]
        return cls(d["n_rows"], d["k"], d["frag_size"], {s.name: s for s in subs})


def _place(specs: list[tuple[str, int]], n_rows: int, k: int, frag: int) -> dict[str, SubColumn] | None:
    cursor = 0
    limit = k * frag
    out: dict[str, SubColumn] = {}
    for name, bits in specs:
        sc = SubColumn(name, bits, n_rows)
        out[name] = sc
        if bits == 0 or n_rows == 0:
            continue
        r = 0
        while r < n_rows:
            frag_end = (cursor // frag + 1) * frag
            room = frag_end - cursor
            left = n_rows - r
            if packed_size(left, bits) <= room:
                rows = left
            else:
                rows = (room * 8 // bits) // 8 * 8
                if rows == 0:
                    cursor = frag_end
                    if cursor >= limit:
                        return None
                    continue
            sc.segments.append((r, rows, cursor))
            cursor += packed_size(rows, bits)
            r += rows
        if cursor > limit:
            return None
    return out


def plan_layout(specs: list[tuple[str, int]], n_rows: int, k: int) -> ObjectLayout:
    """Lay sub-columns ``[(name, bits)]`` of ``n_rows`` rows over ``k`` fragments."""
    total = sum(packed_size(n_rows, b) for _, b in specs)
    frag = max(8, -(-total // k))
    frag = -(-frag // 8) * 8
    widest = max((b for _, b in specs), default=8)
    while True:
        subs = _place(specs, n_rows, k, frag)
        if subs is not None:
            return ObjectLayout(n_rows, k, frag, subs)
        frag += max(8, widest)  # padding at boundaries needs at most one group per fragment


def assemble(layout: ObjectLayout, streams: dict[str, bytes]) -> np.ndarray:
    """Write packed sub-column streams into a ``(k, frag_size)`` uint8 data matrix."""
    data = np.zeros(layout.k * layout.frag_size, dtype=np.uint8)
    for name, sc in layout.subcolumns.items():
        if not sc.bits:  # a constant sub-column: nothing stored
            continue
        stream = np.frombuffer(streams[name], dtype=np.uint8)
        for row0, rows, off in sc.segments:
            s0 = row0 * sc.bits // 8
            n = packed_size(rows, sc.bits)
            data[off : off + n] = stream[s0 : s0 + n]
    return data.reshape(layout.k, layout.frag_size)
