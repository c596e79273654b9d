"""Pushing an image index over the OCI distribution API, checking every digest the registry
returns against ours.

Monolithic uploads (HEAD to skip a blob the registry has, POST for an upload location, one
PUT with the digest), manifests by digest, the index by tag. Credentials come from
``ZFLOW_REGISTRY_USERNAME``/``ZFLOW_REGISTRY_PASSWORD`` or ``~/.docker/config.json``; a 401
is answered with Basic auth, or with a Bearer token fetched from the realm it names. Plain
HTTP only for loopback registries or with ``insecure``. A Docker engine is never used here:
it would re-digest the image.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zflow import settings
from zflow.build.cache import Cache
from zflow.build.oci_layout import Descriptor, blobs_of
from zflow.errors import Problem, RuntimeFailure, UserError

_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+)(?::\d{1,5})?$")


@dataclass(frozen=True)
class Reference:
    host: str  # host[:port] as written
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"

    @property
    def hostname(self) -> str:
        return urllib.parse.urlsplit("//" + self.host).hostname or self.host

    def is_loopback(self) -> bool:
        if self.hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.hostname).is_loopback
        except ValueError:
            return False


def parse_reference(text: str) -> Reference:
    """``HOST[:PORT]/NAME[:TAG]``; the registry host is required (there is no default registry).

    Without a tag, ``tag`` is empty: the caller fills in the action's version.
    """
    where = f"registry reference {text!r}"
    if "@" in text:
        raise UserError(Problem(f"{where}: push to a tag, not a digest", hint="e.g. 127.0.0.1:5000/name:1.0"))
    host, slash, rest = text.partition("/")
    if not slash or not rest or not (("." in host) or (":" in host) or host == "localhost") \
            or not _HOST.match(host):
        raise UserError(Problem(f"{where} must start with a registry host",
                                hint=f"e.g. 127.0.0.1:5000/{text.rsplit('/', 1)[-1] or 'name'}"))
    repo, _, tag = rest.partition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
    if not _REPO.match(repo):
        raise UserError(Problem(f"{where}: repository {repo!r} is not valid",
                                hint="lowercase letters, digits and separators . _ - between them, / between parts"))
    if tag and not _TAG.match(tag):
        raise UserError(Problem(f"{where}: tag {tag!r} is not valid",
                                hint="letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'"))
    return Reference(host=host, repository=repo, tag=tag)


def credentials(host: str) -> tuple[str, str] | None:
    user, password = settings.registry_credentials()
    if user and password is not None:
        return user, password
    cfg = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(cfg.read_text()).get("auths", {})
    except (OSError, json.JSONDecodeError):
        return None
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"):
        entry = auths.get(key)
        if isinstance(entry, dict):
            if entry.get("auth"):
                u, _, p = base64.b64decode(entry["auth"]).decode().partition(":")
                return u, p
            if entry.get("username"):
                return entry["username"], entry.get("password", "")
    return None


@dataclass
class PushReport:
    """What a push moved: blobs and platform manifests uploaded or found; the index is always put."""

    reference: Reference
    index: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


class Registry:
    """One registry connection with its authentication state."""

    def __init__(self, ref: Reference, insecure: bool = False, timeout: float = 60.0):
        self.ref = ref
        self.scheme = "http" if insecure or ref.is_loopback() else "https"
        self.timeout = timeout
        self.creds = credentials(ref.host)
        self.auth_header: str | None = None
        self._conn: http.client.HTTPConnection | None = None

    # -- transport -------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.ref.host, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None,
              ) -> tuple[int, http.client.HTTPMessage, bytes]:
        hdrs = dict(headers or {})
        if self.auth_header:
            hdrs["Authorization"] = self.auth_header
        if hasattr(body, "seek"):
            body.seek(0)
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # a kept-alive connection the server closed: retry once on a new one
                if attempt == 2:
                    raise
                if hasattr(body, "seek"):
                    body.seek(0)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise RuntimeFailure(f"cannot reach registry {self.scheme}://{self.ref.host}: {_why(exc)}") from None
        raise AssertionError("unreachable")

    def request(self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None,
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        status, hdrs, data = self._send(method, target, body, headers)
        if status == 401:
            self._authenticate(hdrs.get("WWW-Authenticate", ""))
            status, hdrs, data = self._send(method, target, body, headers)
            if status == 401:
                user = self.creds[0] if self.creds else "?"
                raise RuntimeFailure(f"registry {self.ref.host} refused the credentials of user {user!r} "
                                     f"({method} {target.split('?')[0]})")
        return status, hdrs, data

    def _authenticate(self, challenge: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        if self.creds is None and scheme != "bearer":
            raise RuntimeFailure(f"registry {self.ref.host} requires authentication: set ZFLOW_REGISTRY_USERNAME and "
                                 "ZFLOW_REGISTRY_PASSWORD, or log in so ~/.docker/config.json holds credentials")
        if scheme == "basic":
            assert self.creds is not None
            token = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
            self.auth_header = f"Basic {token}"
        elif scheme == "bearer":
            self.auth_header = f"Bearer {self._bearer_token(challenge)}"
        else:
            raise RuntimeFailure(f"registry {self.ref.host} asks for unsupported authentication {challenge!r}")

    def _bearer_token(self, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm:
            raise RuntimeFailure(f"registry {self.ref.host} sent a Bearer challenge without a realm: {challenge!r}")
        params["scope"] = f"repository:{self.ref.repository}:pull,push"
        url = urllib.parse.urlsplit(realm)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(url.netloc, timeout=self.timeout)
        headers = {}
        if self.creds:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
        try:
            conn.request("GET", f"{url.path or '/'}?{urllib.parse.urlencode(params)}", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            raise RuntimeFailure(f"cannot reach the token service {realm}: {_why(exc)}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeFailure(f"token service {realm} refused ({resp.status}): check the registry credentials")
        data = json.loads(body or b"{}")
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RuntimeFailure(f"token service {realm} answered without a token")
        return str(token)

    # -- the distribution API --------------------------------------------------------------------
    def _path(self, *rest: str) -> str:
        return "/".join(["/v2", self.ref.repository, *rest])

    def has_blob(self, digest: str) -> bool:
        status, _, _ = self.request("HEAD", self._path("blobs", digest))
        return status == 200

    def has_manifest(self, d: Descriptor) -> bool:
        status, hdrs, _ = self.request("HEAD", self._path("manifests", d.digest), headers={"Accept": d.media_type})
        return status == 200 and hdrs.get("Docker-Content-Digest", d.digest) == d.digest

    def upload_blob(self, digest: str, path: Path) -> None:
        status, hdrs, body = self.request("POST", self._path("blobs", "uploads") + "/",
                                          headers={"Content-Length": "0"})
        if status != 202 or not hdrs.get("Location"):
            raise RuntimeFailure(f"registry {self.ref.host} refused to start an upload ({status}): {_text(body)}")
        location = urllib.parse.urljoin(f"{self.scheme}://{self.ref.host}/", hdrs["Location"])
        parts = urllib.parse.urlsplit(location)
        query = urllib.parse.urlencode({"digest": digest})
        target = parts.path + "?" + (parts.query + "&" if parts.query else "") + query
        size = path.stat().st_size
        with path.open("rb") as f:
            status, hdrs, body = self.request("PUT", target, body=f, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(size)})
        if status != 201:
            raise RuntimeFailure(f"registry {self.ref.host} refused blob {digest} ({status}): {_text(body)}")
        self._check(hdrs, digest, "blob")

    def put_manifest(self, reference: str, d: Descriptor, data: bytes) -> None:
        status, hdrs, body = self.request("PUT", self._path("manifests", reference), body=data,
                                          headers={"Content-Type": d.media_type, "Content-Length": str(len(data))})
        if status not in (200, 201):
            raise RuntimeFailure(f"registry {self.ref.host} refused manifest {reference} ({status}): {_text(body)}")
        self._check(hdrs, d.digest, f"manifest {reference}")

    def _check(self, hdrs: http.client.HTTPMessage, digest: str, what: str) -> None:
        got = hdrs.get("Docker-Content-Digest")
        if got and got != digest:
            raise RuntimeFailure(f"registry {self.ref.host} stored {what} as {got}, but its digest is {digest}: "
                                 "the registry changed the bytes")


def push(cache: Cache, index: Descriptor, ref: Reference, insecure: bool = False) -> PushReport:
    """Push every blob and manifest the index reaches, then the index under the reference's tag."""
    report = PushReport(reference=ref, index=index.digest)
    reg = Registry(ref, insecure)
    try:
        status, _, body = reg.request("GET", "/v2/")
        if status not in (200,):
            raise RuntimeFailure(f"{ref.host} does not answer as an OCI registry (GET /v2/ gave {status}): "
                                 f"{_text(body)}")
        for d in blobs_of(cache, index):
            is_manifest = d.media_type.endswith(("manifest.v1+json", "index.v1+json"))
            if d == index:  # always put: the tag may have pointed elsewhere
                reg.put_manifest(ref.tag, d, cache.read(d.digest))
                report.bytes_uploaded += d.size
            elif is_manifest:
                if reg.has_manifest(d):
                    report.skipped.append(d.digest)
                else:
                    reg.put_manifest(d.digest, d, cache.read(d.digest))
                    report.uploaded.append(d.digest)
                    report.bytes_uploaded += d.size
            elif reg.has_blob(d.digest):
                report.skipped.append(d.digest)
            else:
                reg.upload_blob(d.digest, cache.path(d.digest))
                report.uploaded.append(d.digest)
                report.bytes_uploaded += d.size
    finally:
        reg.close()
    return report


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return str(exc) or type(exc).__name__


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")[:300]
