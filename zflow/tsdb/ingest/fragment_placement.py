"""Where the n fragments of an object go: n distinct locations, rotated per object.

Fragment i of an object goes to location index ``(rotation + i) % m``. Distinct locations per object
mean losing any n-k locations loses at most n-k fragments of any object; rotating the start per
object spreads the data fragments (which answer every healthy query) evenly, so query load and
bytes are balanced across locations instead of always hitting the first k.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence


def rotation_for(object_id: str | int) -> int:
    """A stable (process- and platform-independent) rotation for an object id."""
    return zlib.crc32(str(object_id).encode("utf-8"))


def place(object_id: str | int, n: int, locations: Sequence[str]) -> list[int]:
    """Index into ``locations`` of each fragment 0..n-1 of ``object_id`` (distinct; needs m >= n)."""
    m = len(locations)
    if len(set(locations)) != m:
        raise ValueError(f"location names must be distinct: {list(locations)}")
    if m < n:
        raise ValueError(
            f"{n} fragments need at least {n} locations to survive any {n} - k failures, "
            f"got {m}: {list(locations)}")
    start = rotation_for(object_id) % m
    return [(start + i) % m for i in range(n)]


def by_location(placement: Sequence[int]) -> dict[int, list[int]]:
    """Invert a placement: location index -> fragment indices it holds."""
    out: dict[int, list[int]] = {}
    for i, loc in enumerate(placement):
        out.setdefault(loc, []).append(i)
    return out
