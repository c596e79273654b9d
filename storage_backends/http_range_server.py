"""The HTTP "range lambda": serves fragments from a directory with RFC 7233 (multi-)ranges.

It plays the cloud-function role of the published design: a location that, given one request
with many byte ranges, returns just those bytes. Endpoints (keys are paths)::

    GET    /{key}            200 whole fragment, or 206 for a Range header:
                             one range -> body + Content-Range; several -> multipart/byteranges;
                             with ``Accept: application/x-zflow-ranges`` -> the compact binary
                             body of :mod:`storage_backends.range_wire` (for one or many ranges)
                             400 malformed Range, 416 unsatisfiable (``Content-Range: bytes */N``)
                             with ``X-Zflow-Verify: chunks`` the CRC of every chunk the ranges
                             touch is checked first: 409 + ``X-Zflow-Bad-Chunks: 1,4`` if any fails
    HEAD   /{key}            size in Content-Length
    POST   /{key}            body = range list (application/x-zflow-range-list) -> 206 compact
                             body; for more ranges than fit in a header
    PUT    /{key}            store (atomic), 201
    DELETE /{key}            204, or 404
    GET    /{key}?verify     JSON {"bad_chunks": [...]}: chunk CRCs checked on the server (422 +
                             {"error": ...} when the file is not a fragment)
    GET    /?prefix=P        JSON list of keys starting with P
    GET    /_health          200 "ok"

Run it as its own process: ``python -m storage_backends.http_range_server --dir D --port P`` (port 0 picks a
free port); it prints ``listening on http://HOST:PORT`` once bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from storage_backends.base import (
    BadKey,
    CorruptFragment,
    KeyNotFound,
    LocationUnavailable,
    RangeNotSatisfiable,
    StoreError,
)
from storage_backends.fragment_format import FragmentError
from storage_backends.local_dir import LocalDirStore
from storage_backends.range_wire import (
    COMPACT_TYPE,
    VERIFY_BAD,
    VERIFY_HEADER,
    MalformedRange,
    UnsatisfiableRange,
    build_multipart,
    pack_compact_array,
    parse_range_header,
    unpack_range_array,
)
from zflow.process import StopSignal

MAX_PUT = 1 << 31


class RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TCP connection serves many requests
    # headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms per response on Linux)
    disable_nagle_algorithm = True
    server_version = "zflow-range/1"
    store: LocalDirStore  # set on the subclass made by make_server

    def log_message(self, format: str, *args: object) -> None:  # quiet by default
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # ---- helpers ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":  # HEAD never carries a body
            self.wfile.write(body)

    def _error(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(code, (message + "\n").encode(), headers=headers)

    def _key(self) -> tuple[str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        return url.path.lstrip("/"), parse_qs(url.query)

    # ---- verbs --------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._guard(self._get, True)

    def do_GET(self) -> None:
        self._guard(self._get, False)

    def do_POST(self) -> None:
        self._guard(self._post)

    def do_PUT(self) -> None:
        self._guard(self._put)

    def do_DELETE(self) -> None:
        self._guard(self._delete)

    def _guard(self, handler: Callable[..., None], *args: object) -> None:
        """Run a verb, turning store and range errors into their HTTP status codes."""
        self._size: int | None = None
        try:
            handler(*args)
        except (BadKey, MalformedRange, BadRequest) as exc:
            self._error(400, str(exc))
        except KeyNotFound as exc:
            self._error(404, str(exc))
        except CorruptFragment as exc:
            self._error(409, str(exc), {VERIFY_BAD: ",".join(map(str, exc.bad_chunks))})
        except UnsatisfiableRange as exc:
            self._error(416, str(exc), {"Content-Range": f"bytes */{self._size}"})
        except LocationUnavailable as exc:
            self._error(503, str(exc))
        except RangeNotSatisfiable as exc:
            self._error(416, str(exc), {"Content-Range": f"bytes */{self._size}"})
        except StoreError as exc:  # anything else the store refuses: say so, keep the connection
            self._error(500, str(exc))

    def _get(self, head_only: bool) -> None:
        key, query = self._key()
        if key == "":
            prefix = query.get("prefix", [""])[0]
            return self._send(200, json.dumps(self.store.list(prefix)).encode(), "application/json")
        if key == "_health":
            return self._send(200, b"ok\n")
        if "verify" in query:  # scrub next to the data: only the verdict crosses the network
            try:
                bad = self.store.verify(key)
            except FragmentError as exc:
                return self._send(422, json.dumps({"error": str(exc)}).encode(), "application/json")
            return self._send(200, json.dumps({"bad_chunks": bad}).encode(), "application/json")
        size = self._size = self.store.size(key)
        rng = self.headers.get("Range")
        if rng is None:
            if head_only:
                return self._head(size)
            return self._send(200, self.store.get(key), "application/octet-stream")
        ranges = parse_range_header(rng, size)
        verify = bool(self.headers.get(VERIFY_HEADER))
        if COMPACT_TYPE in self.headers.get("Accept", ""):
            return self._compact(key, np.array([a for a, _ in ranges], dtype=np.int64),
                                 np.array([b for _, b in ranges], dtype=np.int64), verify)
        datas = self.store.get_ranges(key, ranges, verify=verify)
        if len(ranges) == 1:
            (a, b), data = ranges[0], datas[0]
            return self._send(206, data, "application/octet-stream",
                              {"Content-Range": f"bytes {a}-{b - 1}/{size}"})
        ctype, body = build_multipart(ranges, datas, size)
        return self._send(206, body, ctype)

    def _head(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_PUT:
            raise BadRequest("a Content-Length (at most 2 GiB) is required")
        return self.rfile.read(int(length))

    def _post(self) -> None:
        key, _ = self._key()
        body = self._body()
        self._size = self.store.size(key)
        starts, ends = unpack_range_array(body, self._size)
        self._compact(key, starts, ends, bool(self.headers.get(VERIFY_HEADER)))

    def _compact(self, key: str, starts: np.ndarray, ends: np.ndarray, verify: bool) -> None:
        """Ranges -> compact body, vectorised end to end (no per-range Python work)."""
        data, _offsets = self.store.get_ranges_concat(key, starts, ends, verify=verify)
        self._send(206, pack_compact_array(starts, ends, data), COMPACT_TYPE)

    def _put(self) -> None:
        key, _ = self._key()
        self.store.put(key, self._body())
        self._send(201)

    def _delete(self) -> None:
        key, _ = self._key()
        self.store.delete(key)
        self._send(204)


class BadRequest(ValueError):
    """A request the server cannot read (no Content-Length, too large)."""


def make_server(directory: str, host: str = "127.0.0.1", port: int = 0,
                verbose: bool = False, fsync: bool = False) -> ThreadingHTTPServer:
    """A bound (not yet serving) server for ``directory``; ``server.server_address[1]`` is the port."""
    store = LocalDirStore(directory, name=f"range-server:{directory}", fsync=fsync)
    handler = type("BoundRangeHandler", (RangeHandler,), {"store": store})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def serve_in_thread(directory: str, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a background thread (in-process use); returns (server, base URL)."""
    server = make_server(directory, host, port)
    threading.Thread(target=server.serve_forever, name="zflow-range-server", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m storage_backends.http_range_server",
                                 description="Serve fragments over HTTP with RFC 7233 multi-range support.")
    ap.add_argument("--dir", required=True, help="directory holding the fragments")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    ap.add_argument("--fsync", action="store_true", help="flush every stored fragment to disk")
    args = ap.parse_args(argv)
    try:
        server = make_server(args.dir, args.host, args.port, args.verbose, args.fsync)
    except OSError as exc:
        print(f"range_server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    stop = StopSignal().install()
    serving = threading.Thread(target=server.serve_forever, name="range-server", daemon=True)
    serving.start()
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
