"""A storage location behind an HTTP range server (``storage_backends.http_range_server`` or any RFC 7233 server).

One ``get_ranges`` call is one HTTP request with a multi-range header (or, past 8 KB of header,
a ``POST`` of a binary range list - see :mod:`storage_backends.range_wire`). The client asks for the
compact binary body (``Accept: application/x-zflow-ranges``) by default and also understands
plain ``multipart/byteranges`` and single-range 206 responses, so it works against ordinary web
servers. Connections are kept alive (``http.client``, a small pool shared by threads) and re-opened once
when a server closed an idle one; connection failures and timeouts become :class:`LocationUnavailable`.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from urllib.parse import quote, urlsplit

import numpy as np

from storage_backends.base import (
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
from storage_backends.range_wire import (
    COMPACT_TYPE,
    MAX_HEADER,
    RANGE_LIST_TYPE,
    VERIFY_BAD,
    VERIFY_HEADER,
    CorruptResponse,
    format_range_header,
    pack_range_array,
    pack_range_list,
    parse_content_range,
    parse_multipart,
    unpack_compact,
)

MAX_IDLE = 16  # idle keep-alive connections kept per store

_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
              http.client.CannotSendRequest, http.client.ResponseNotReady)


class _NoDelayConnection(http.client.HTTPConnection):
    """Nagle off: a request whose body is sent apart from its headers (PUT of a memoryview)
    would otherwise wait for the server's delayed ACK."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HttpRangeStore(FragmentStore):
    def __init__(self, url: str, name: str | None = None, timeout: float = 10.0,
                 compact: bool = True):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "") or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {url!r}")
        super().__init__(name or url)
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.compact = compact
        # Keep-alive connections, each used by one request at a time: a thread takes an idle one
        # (or opens one) and gives it back, so any number of threads may share the store and
        # short-lived worker threads leave no connections behind.
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()
        self._closed = False

    # ---- transport ----------------------------------------------------------------------------
    def _take(self) -> http.client.HTTPConnection:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return _NoDelayConnection(self.host, self.port, timeout=self.timeout)

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._idle_lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _request(self, method: str, path: str, body: bytes | memoryview | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        url = self.base + "/" + path
        for attempt in (0, 1):
            conn = self._take()
            try:
                conn.request(method, url, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
            except _RETRYABLE as exc:  # the server closed an idle connection: retry once
                conn.close()
                if attempt == 1:
                    raise LocationUnavailable(f"{self.name}: connection lost: {exc}") from None
                continue
            except (ConnectionRefusedError, TimeoutError, OSError) as exc:
                conn.close()
                raise LocationUnavailable(f"{self.name}: unreachable: {exc}") from None
            except BaseException:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                self._give_back(conn)
            return resp.status, hdrs, data
        raise AssertionError("unreachable")

    def _check(self, key: str, status: int, data: bytes, ok: tuple[int, ...]) -> None:
        if status in ok:
            return
        text = data.decode("utf-8", "replace").strip()
        if status == 404:
            raise KeyNotFound(f"{self.name}: no fragment {key!r}")
        if status == 416:
            raise RangeNotSatisfiable(f"{self.name}: {key}: {text}")
        if status in (502, 503, 504):
            raise LocationUnavailable(f"{self.name}: HTTP {status}: {text}")
        raise StoreError(f"{self.name}: {key}: HTTP {status}: {text}")

    # ---- primitives ---------------------------------------------------------------------------
    def _put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        status, _h, body = self._request("PUT", quote(key), body=memoryview(data).cast("B"),
                                         headers={"Content-Type": "application/octet-stream"})
        self._check(key, status, body, (200, 201, 204))

    def _get(self, key: str) -> bytes:
        status, _h, body = self._request("GET", quote(key))
        self._check(key, status, body, (200,))
        return body

    def _get_ranges_verified(self, key: str, ranges: list[Range]) -> list[bytes]:
        if not self.compact:  # a plain RFC 7233 server cannot verify: check from here
            return super()._get_ranges_verified(key, ranges)
        return self._get_ranges(key, ranges, verify=True)

    def _get_ranges(self, key: str, ranges: list[Range], verify: bool = False) -> list[bytes]:
        header = format_range_header(ranges)
        extra = {VERIFY_HEADER: "chunks"} if verify else {}
        if len(header) > MAX_HEADER:
            if not self.compact:  # a plain RFC 7233 server: several requests of header size
                step = max(1, len(ranges) * MAX_HEADER // len(header))
                return [d for i in range(0, len(ranges), step)
                        for d in self._get_ranges(key, ranges[i:i + step])]
            status, hdrs, body = self._request("POST", quote(key), body=pack_range_list(ranges),
                                               headers={"Content-Type": RANGE_LIST_TYPE,
                                                        "Accept": COMPACT_TYPE, **extra})
        else:
            headers = {"Range": header, **extra}
            if self.compact:
                headers["Accept"] = COMPACT_TYPE
            status, hdrs, body = self._request("GET", quote(key), headers=headers)
        if status == 409:
            bad = [int(c) for c in hdrs.get(VERIFY_BAD.lower(), "").split(",") if c.strip()]
            raise CorruptFragment(f"{self.name}: {body.decode('utf-8', 'replace').strip()}", bad)
        self._check(key, status, body, (200, 206))
        ctype = hdrs.get("content-type", "")
        try:
            if status == 200:  # a server that ignored the Range header: slice locally
                parts = [(a, body[a:b]) for a, b in ranges]
            elif ctype.startswith(COMPACT_TYPE):
                parts = unpack_compact(body)
            elif ctype.startswith("multipart/byteranges"):
                parts = parse_multipart(ctype, body)
            else:
                start, _end, _size = parse_content_range(hdrs.get("content-range", ""))
                parts = [(start, body)]
        except CorruptResponse as exc:
            raise StoreError(f"{self.name}: {key}: {exc}") from None
        return _match(key, ranges, parts)

    def _get_ranges_concat(self, key: str, starts: np.ndarray, ends: np.ndarray,
                           verify: bool) -> np.ndarray:
        """One POST of a binary range list; the compact body's data section IS the answer."""
        if not self.compact:  # a plain RFC 7233 server: through the multi-range path
            return super()._get_ranges_concat(key, starts, ends, verify)
        extra = {VERIFY_HEADER: "chunks"} if verify else {}
        status, hdrs, body = self._request("POST", quote(key), body=pack_range_array(starts, ends),
                                           headers={"Content-Type": RANGE_LIST_TYPE,
                                                    "Accept": COMPACT_TYPE, **extra})
        if status == 409:
            bad = [int(c) for c in hdrs.get(VERIFY_BAD.lower(), "").split(",") if c.strip()]
            raise CorruptFragment(f"{self.name}: {body.decode('utf-8', 'replace').strip()}", bad)
        self._check(key, status, body, (206,))
        return concat_from_compact(self.name, key, body, starts, ends)

    def _verify(self, key: str) -> list[int]:
        status, _h, body = self._request("GET", quote(key) + "?verify=1")
        if status == 422:
            raise FragmentError(f"{self.name}: {key}: {json.loads(body)['error']}")
        self._check(key, status, body, (200,))
        return [int(c) for c in json.loads(body)["bad_chunks"]]

    def _delete(self, key: str) -> None:
        status, _h, body = self._request("DELETE", quote(key))
        self._check(key, status, body, (200, 204))

    def _list(self, prefix: str) -> list[str]:
        status, _h, body = self._request("GET", "?prefix=" + quote(prefix))
        self._check("", status, body, (200,))
        return list(json.loads(body))

    def _exists(self, key: str) -> bool:
        status, _h, body = self._request("HEAD", quote(key))
        if status == 404:
            return False
        self._check(key, status, body, (200,))
        return True

    def _size(self, key: str) -> int:
        status, hdrs, body = self._request("HEAD", quote(key))
        self._check(key, status, body, (200,))
        return int(hdrs.get("content-length", "0"))

    def close(self) -> None:
        with self._idle_lock:
            conns, self._idle = self._idle, []
            self._closed = True
        for conn in conns:
            conn.close()


def _match(key: str, ranges: list[Range], parts: list[tuple[int, bytes]]) -> list[bytes]:
    """Map response parts back to the requested ranges (servers may reorder or coalesce)."""
    if len(parts) == len(ranges) and all(
            p[0] == a and len(p[1]) == b - a for p, (a, b) in zip(parts, ranges, strict=True)):
        return [p[1] for p in parts]
    out = []
    for a, b in ranges:
        for off, data in parts:
            if off <= a and b <= off + len(data):
                out.append(data[a - off:b - off])
                break
        else:
            raise RangeNotSatisfiable(f"{key}: range [{a}, {b}) missing from the response")
    return out
