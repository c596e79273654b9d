"""Real parts for the builder tests: a Debian ``docker-registry`` on a free loopback port
(optionally behind htpasswd Basic auth), an offline network namespace, layout readers."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from zflow.transport.session import free_port


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (.ci/run installs them)")


@contextlib.contextmanager
def registry(tmp: Path, user: str | None = None, password: str | None = None) -> Iterator[str]:
    """A docker-registry on 127.0.0.1:<free port>; yields ``127.0.0.1:PORT``."""
    need("docker-registry")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    auth = ""
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
