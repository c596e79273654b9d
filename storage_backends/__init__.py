"""Fragment stores ("locations") for the time-series store: one interface, several backends.

``open_location(spec)`` builds one from a short spec string:

* ``file:///path``, ``dir:/path`` or a plain path - :class:`~storage_backends.local_dir.LocalDirStore`
* ``http://host:port`` - :class:`~storage_backends.http_range.HttpRangeStore`
* ``zenoh:NAME`` - :class:`~storage_backends.zenoh_location.ZenohLocationStore`, over the
  borrowed ``session`` if given, else over its own client session to ``connect`` endpoints
  (closed by ``store.close()``)
"""

from __future__ import annotations

from typing import Any

from storage_backends.base import (
    BadKey,
    CorruptFragment,
    FragmentStore,
    KeyNotFound,
    LocationUnavailable,
    RangeNotSatisfiable,
    StoreError,
)

__all__ = [
    "BadKey",
    "CorruptFragment",
    "FragmentStore",
    "KeyNotFound",
    "LocationUnavailable",
    "RangeNotSatisfiable",
    "StoreError",
    "open_location",
]


def open_location(spec: str, name: str | None = None, session: Any = None,
                  connect: list[str] | None = None, timeout: float = 10.0) -> FragmentStore:
    if spec.startswith(("http://", "https://")):
        if spec.startswith("https://"):
            raise ValueError(f"{spec}: https locations are not supported yet (use http:// on a trusted network)")
        from storage_backends.http_range import HttpRangeStore

        return HttpRangeStore(spec, name=name, timeout=timeout)
    if spec.startswith("zenoh:"):
        from storage_backends.zenoh_location import ZenohLocationStore

        if session is None and not connect:
            raise ValueError(f"{spec}: a Zenoh location needs an open session or connect endpoints")
        return ZenohLocationStore(session, spec[len("zenoh:"):], timeout=timeout, name=name,
                                  connect=connect)
    from storage_backends.local_dir import LocalDirStore

    scheme = spec.split("://", 1)[0] if "://" in spec else None
    if scheme is not None and scheme != "file":
        raise ValueError(f"location {spec!r}: unknown scheme {scheme!r} "
                         "(expected file:///path, dir:/path, http://host:port or zenoh:NAME)")
    if spec.startswith("file://"):
        path = spec[len("file://"):]
    elif spec.startswith("dir:"):
        path = spec[len("dir:"):]
    else:
        path = spec
    if not path:
        raise ValueError("empty location spec: expected dir:/path, http://host:port or zenoh:NAME")
    return LocalDirStore(path, name=name)
