"""Start a run for each HTTP request on a port (stdlib http.server, loopback only)."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


async def run(service, input_values: dict) -> None:
    loop = asyncio.get_running_loop()
    path = input_values.get("path") or "/"
    created = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def _start_run(self, method: str) -> None:
            url = urlsplit(self.path)
            if url.path != path:
                self.send_error(404, f"runs start at {path}")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
            fut = asyncio.run_coroutine_threadsafe(
                service.create_run({"body": body, "method": method, "query": url.query}), loop)
            try:
                fut.result(timeout=30)
            except Exception as exc:
                self.send_error(500, str(exc))
                return
            created["n"] += 1
            data = json.dumps({"accepted": True, "runs": created["n"]}).encode()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._start_run("POST")

        def do_GET(self) -> None:
            self._start_run("GET")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(input_values["port"])), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        await asyncio.Event().wait()
    finally:
        server.shutdown()
        server.server_close()
