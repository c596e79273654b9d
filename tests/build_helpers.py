"""Real parts for the builder tests: a Debian ``docker-registry`` on a free loopback port
(optionally behind htpasswd Basic auth), an offline network namespace, layout readers."""

from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from zflow.transport.session import free_port


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (.ci/run installs them)")


@dataclass
class TokenService:
    realm: str
    cert: Path
    service: str = "zflow-test-registry"
    issuer: str = "zflow-test-issuer"


@contextlib.contextmanager
def token_service(tmp: Path, user: str, password: str) -> Iterator[TokenService]:
    """A real Bearer token service (distribution's token auth): Basic credentials in, an RS256 JWT
    carrying its certificate (x5c) out, granting pull and push on the scope asked for."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    tmp.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zflow-test-token")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    cert_path = tmp / "token.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    svc = TokenService(realm="", cert=cert_path)
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            access = []
            for scope in query.get("scope", []):
                kind, repo, actions = scope.split(":")
                access.append({"type": kind, "name": repo, "actions": actions.split(",")})
            t = int(time.time())
            claims = {"iss": svc.issuer, "sub": user, "aud": svc.service, "exp": t + 300, "nbf": t - 10, "iat": t,
                      "jti": os.urandom(8).hex(), "access": access}
            head = b64(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [x5c]}).encode())
            body = b64(json.dumps(claims).encode())
            sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
            data = json.dumps({"token": f"{head}.{body}.{b64(sig)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    svc.realm = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield svc
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def registry(tmp: Path, user: str | None = None, password: str | None = None,
             token: TokenService | None = None) -> Iterator[str]:
    """A docker-registry on 127.0.0.1:<free port> (htpasswd with ``user``, or token auth with
    ``token``); yields ``127.0.0.1:PORT``."""
    need("docker-registry")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    auth = ""
    if token:
        auth = (f"auth:\n  token:\n    realm: {token.realm}\n    service: {token.service}\n"
                f"    issuer: {token.issuer}\n    rootcertbundle: {token.cert}\n")
    if user:
        need("htpasswd")
        hp = tmp / "htpasswd"
        subprocess.run(["htpasswd", "-Bbc", str(hp), user, password or ""], check=True, capture_output=True)
        auth = f"auth:\n  htpasswd:\n    realm: zflow-test\n    path: {hp}\n"
    cfg = tmp / "config.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
                   f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}")
    log = (tmp / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # 401: up, and asking for credentials
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"docker-registry did not start: {(tmp / 'registry.log').read_text()}") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """Terminate a process we started, then kill it if it does not go."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def layout_index(layout: Path) -> dict:
    top = json.loads((layout / "index.json").read_text())
    return json.loads(blob(layout, top["manifests"][0]["digest"]))


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def manifests(layout: Path) -> dict[str, dict]:
    return {m["platform"]["architecture"]: json.loads(blob(layout, m["digest"]))
            for m in layout_index(layout)["manifests"]}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)


def seed_cache(src: Path, dst: Path) -> Path:
    """A new cache holding the downloaded blobs of ``src`` but none of its layer memos, so every
    layer is written again (hard links: no copy of the bytes)."""
    (dst / "blobs" / "sha256").mkdir(parents=True)
    (dst / "memo").mkdir()
    for p in (src / "blobs" / "sha256").iterdir():
        os.link(p, dst / "blobs" / "sha256" / p.name)
    return dst
