"""A storage location behind a Zenoh queryable, and the process that serves one.

Keys (from :mod:`zflow.keyexprs`): fragment ``a/b/c`` of location ``L`` is
``zflow/tsdb/_loc/L/f/a/b/c``; the listing is ``zflow/tsdb/_loc/L/list``. Every operation is one
Zenoh ``get`` whose selector parameters say what to do::

    f/KEY?op=ranges;ranges=0:50,100:150   -> compact binary body (storage_backends.range_wire) of
                                             [start, end) ranges; with ``ranges=payload`` the
                                             ranges travel in the query payload instead (a
                                             range_wire range list) for very long lists;
                                             ``;verify=1`` checks the chunk CRCs first
    f/KEY?op=get | op=size | op=delete    -> bytes | decimal size | "ok"
    f/KEY?op=verify                       -> JSON {"bad_chunks": [...]} (or {"error": ...}),
                                             checked next to the data
    f/KEY?op=put  (query payload = bytes) -> "ok" (a put is acknowledged, unlike a Zenoh put)
    list?prefix=P                         -> JSON list of keys

Errors come back as ``reply_err`` payloads ``"<http-like code> <message>"`` (404, 416, 400,
503; 409 + JSON ``{"error", "bad_chunks"}`` for a verified read of corrupt chunks); no reply at all within the timeout means the location is down
(:class:`LocationUnavailable`).

Serve a directory: ``python -m storage_backends.zenoh_location --dir D --name L --connect tcp/H:P``.
"""

from __future__ import annotations

import argparse
import json
import queue
import struct
import sys
import threading
import time
from typing import Any

import numpy as np

from storage_backends.base import (
    BadKey,
    CorruptFragment,
    FragmentStore,
    KeyNotFound,
    LocationUnavailable,
    Range,
    RangeNotSatisfiable,
    StoreError,
    concat_from_compact,
)
from storage_backends.fragment_format import FragmentError
from storage_backends.local_dir import LocalDirStore
from storage_backends.range_wire import (
    CorruptResponse,
    MalformedRange,
    UnsatisfiableRange,
    pack_compact,
    pack_compact_array,
    pack_range_array,
    pack_range_list,
    unpack_compact,
    unpack_range_array,
)
from zflow import keyexprs
from zflow.errors import UserError
from zflow.process import StopSignal

MAX_RANGES_IN_SELECTOR = 256


_now = time.monotonic


class _NoQueryable(Exception):
    """A query came back at once with no reply: nothing serves the key (yet)."""


def _format_ranges(ranges: list[Range]) -> str:
    return ",".join(f"{a}:{b}" for a, b in ranges)


def _parse_ranges(text: str) -> list[Range]:
    out = []
    for part in text.split(","):
        a, sep, b = part.partition(":")
        if not sep or not a.strip().isdigit() or not b.strip().isdigit():
            raise ValueError(f"bad range {part!r}: expected start:end")
        out.append((int(a), int(b)))
    return out


class ZenohLocationStore(FragmentStore):
    """Client side: a location named ``location`` served over Zenoh.

    ``session`` is borrowed (the caller closes it); with ``session=None`` the store opens its own
    client session to ``connect`` and closes it in :meth:`close`.
    """

    def __init__(self, session: Any, location: str, timeout: float = 10.0, name: str | None = None,
                 connect: list[str] | None = None):
        super().__init__(name or f"zenoh:{location}")
        self.location = keyexprs.chunk(location, "location")
        self.timeout = timeout
        # Declarations reach a fresh session asynchronously: right after opening, "no queryable"
        # may only mean "not heard of yet", so such answers are retried for a short while.
        self._grace_until = _now() + min(2.0, timeout)
        self._own: Any = None
        if session is None:
            from zflow.transport.session import SessionOptions, open_session

            self._own = open_session(SessionOptions(mode="client", connect=list(connect or [])))
            session = self._own.__enter__()
        self.session = session

    def close(self) -> None:
        if self._own is not None:
            own, self._own = self._own, None
            own.__exit__(None, None, None)

    def _query(self, selector: str, payload: bytes | None = None) -> bytes:
        while True:
            try:
                return self._query_once(selector, payload)
            except _NoQueryable:
                if _now() >= self._grace_until:
                    raise LocationUnavailable(
                        f"{self.name}: no queryable serves {self.location!r} (location down)") from None
                time.sleep(0.05)

    def _query_once(self, selector: str, payload: bytes | None) -> bytes:
        import zenoh

        start = _now()
        try:
            replies = self.session.get(selector, payload=payload, timeout=self.timeout,
                                       target=zenoh.QueryTarget.BEST_MATCHING)
            for reply in replies:
                if reply.ok is not None:
                    return reply.ok.payload.to_bytes()
                _raise_for(self.name, reply.err.payload.to_bytes().decode("utf-8", "replace"))
        except zenoh.ZError as exc:
            raise LocationUnavailable(f"{self.name}: {exc}") from None
        if _now() - start < self.timeout * 0.9:
            raise _NoQueryable
        raise LocationUnavailable(f"{self.name}: no reply within {self.timeout}s (location down or overloaded)")

    def _sel(self, key: str, **params: str) -> str:
        sel = keyexprs.tsdb_fragment(self.location, key)
        return sel + "?" + ";".join(f"{k}={v}" for k, v in params.items()) if params else sel

    def _put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._query(self._sel(key, op="put"), payload=bytes(data))

    def _get(self, key: str) -> bytes:
        return self._query(self._sel(key, op="get"))

    def _get_ranges_verified(self, key: str, ranges: list[Range]) -> list[bytes]:
        return self._get_ranges(key, ranges, verify=True)

    def _get_ranges(self, key: str, ranges: list[Range], verify: bool = False) -> list[bytes]:
        extra = {"verify": "1"} if verify else {}
        if len(ranges) <= MAX_RANGES_IN_SELECTOR:
            body = self._query(self._sel(key, op="ranges", ranges=_format_ranges(ranges), **extra))
        else:
            body = self._query(self._sel(key, op="ranges", ranges="payload", **extra),
                               payload=pack_range_list(ranges))
        try:
            parts = unpack_compact(body)
        except CorruptResponse as exc:
            raise StoreError(f"{self.name}: {key}: {exc}") from None
        if len(parts) != len(ranges):
            raise StoreError(f"{self.name}: {key}: asked {len(ranges)} ranges, got {len(parts)}")
        return [d for _off, d in parts]

    def _get_ranges_concat(self, key: str, starts: np.ndarray, ends: np.ndarray,
                           verify: bool) -> np.ndarray:
        """The ranges as a binary list in the query payload; the compact reply's data section
        is the answer (numpy both ways, no per-range Python work)."""
        extra = {"verify": "1"} if verify else {}
        body = self._query(self._sel(key, op="ranges", ranges="payload", **extra),
                           payload=pack_range_array(starts, ends))
        return concat_from_compact(self.name, key, body, starts, ends)

    def _delete(self, key: str) -> None:
        self._query(self._sel(key, op="delete"))

    def _list(self, prefix: str) -> list[str]:
        sel = keyexprs.tsdb_location(self.location, "list") + "?prefix=" + prefix
        return list(json.loads(self._query(sel)))

    def _verify(self, key: str) -> list[int]:
        reply = json.loads(self._query(self._sel(key, op="verify")))
        if "error" in reply:
            raise FragmentError(f"{self.name}: {key}: {reply['error']}")
        return [int(c) for c in reply["bad_chunks"]]

    def _exists(self, key: str) -> bool:
        try:
            self._size(key)
        except KeyNotFound:
            return False
        return True

    def _size(self, key: str) -> int:
        return int(self._query(self._sel(key, op="size")))


def _raise_for(name: str, text: str) -> None:
    code, _, msg = text.partition(" ")
    if code == "409":
        info = json.loads(msg)
        raise CorruptFragment(f"{name}: {info['error']}", info.get("bad_chunks", []))
    exc = {"404": KeyNotFound, "416": RangeNotSatisfiable, "400": BadKey,
           "503": LocationUnavailable}.get(code, StoreError)
    raise exc(f"{name}: {msg}")


# ---- server ------------------------------------------------------------------------------------
class LocationServer:
    """Serves a :class:`LocalDirStore` on ``zflow/tsdb/_loc/{location}/**`` of an open session.

    The Zenoh callback only enqueues; ``workers`` threads do the disk I/O and reply.
    """

    def __init__(self, session: Any, location: str, directory: str, workers: int = 2,
                 fsync: bool = False):
        self.session = session
        self.location = location
        self.store = LocalDirStore(directory, name=f"zenoh-location:{location}", fsync=fsync)
        self.prefix = keyexprs.tsdb_location(location)
        self._q: queue.Queue[Any] = queue.Queue(maxsize=1024)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"zloc-{i}", daemon=True)
                         for i in range(workers)]
        self._queryable: Any = None

    def start(self) -> LocationServer:
        for t in self._threads:
            t.start()
        self._queryable = self.session.declare_queryable(self.prefix + "/**", self._q.put)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._queryable is not None:
            try:
                self._queryable.undeclare()
            except Exception:
                pass
            self._queryable = None
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> LocationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                query = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._answer(query)
            except Exception as exc:  # a bad query must never kill the worker
                try:
                    query.reply_err(f"500 {type(exc).__name__}: {exc}")
                except Exception:
                    pass
            finally:
                try:
                    query.drop()
                except Exception:
                    pass

    def _answer(self, query: Any) -> None:
        ke = str(query.key_expr)
        rest = ke[len(self.prefix) + 1:] if ke.startswith(self.prefix + "/") else ""
        params = query.parameters
        try:
            if rest == "list":
                body = json.dumps(self.store.list(params.get("prefix", "") or "")).encode()
                query.reply(ke, body)
                return
            if not rest.startswith("f/"):
                raise BadKey(f"unknown path {rest!r}: expected f/<key> or list")
            key = rest[2:]
            op = params.get("op", "get") or "get"
            if op == "ranges":
                spec = params.get("ranges", "") or ""
                verify = params.get("verify") == "1"
                if spec == "payload":  # a binary range list: vectorised end to end
                    raw = query.payload.to_bytes() if query.payload is not None else b""
                    starts, ends = unpack_range_array(raw, self.store.size(key))
                    data, _offsets = self.store.get_ranges_concat(key, starts, ends, verify=verify)
                    query.reply(ke, pack_compact_array(starts, ends, data))
                else:
                    ranges = _parse_ranges(spec)
                    datas = self.store.get_ranges(key, ranges, verify=verify)
                    query.reply(ke, pack_compact(ranges, datas))
            elif op == "get":
                query.reply(ke, self.store.get(key))
            elif op == "verify":
                try:
                    verdict: dict[str, Any] = {"bad_chunks": self.store.verify(key)}
                except FragmentError as exc:
                    verdict = {"error": str(exc)}
                query.reply(ke, json.dumps(verdict).encode())
            elif op == "size":
                query.reply(ke, str(self.store.size(key)).encode())
            elif op == "put":
                blob = query.payload.to_bytes() if query.payload is not None else b""
                self.store.put(key, blob)
                query.reply(ke, b"ok")
            elif op == "delete":
                self.store.delete(key)
                query.reply(ke, b"ok")
            else:
                raise BadKey(f"unknown op {op!r}: expected ranges, get, size, put or delete")
        except KeyNotFound as exc:
            query.reply_err(f"404 {exc}")
        except CorruptFragment as exc:
            query.reply_err("409 " + json.dumps({"error": str(exc), "bad_chunks": exc.bad_chunks}))
        except (RangeNotSatisfiable, UnsatisfiableRange) as exc:
            query.reply_err(f"416 {exc}")
        except (BadKey, MalformedRange, ValueError, struct.error) as exc:
            query.reply_err(f"400 {exc}")
        except LocationUnavailable as exc:
            query.reply_err(f"503 {exc}")


def main(argv: list[str] | None = None) -> int:
    from zflow.transport.session import SessionOptions, open_session

    ap = argparse.ArgumentParser(prog="python -m storage_backends.zenoh_location",
                                 description="Serve a directory of fragments as a Zenoh location.")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--name", default=None, help="location name (default: the directory's name)")
    ap.add_argument("--connect", action="append", default=[], help="Zenoh endpoint, e.g. tcp/127.0.0.1:7447")
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--mode", default="client", choices=["client", "peer"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fsync", action="store_true", help="flush every stored fragment to disk")
    args = ap.parse_args(argv)
    import os

    name = args.name or os.path.basename(os.path.abspath(args.dir))
    stop = StopSignal().install()
    try:
        with open_session(SessionOptions(mode=args.mode, connect=args.connect, listen=args.listen)) as s, \
                LocationServer(s, name, args.dir, args.workers, args.fsync):
            print(f"serving location {name} on {keyexprs.tsdb_location(name)}/**", flush=True)
            stop.wait()
    except (StoreError, UserError) as exc:
        print(f"zenoh_location: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
