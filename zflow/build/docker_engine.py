"""``--load-docker``: hand one platform's image to a Docker engine, for local runs only.

The engine gets a ``docker save``-style archive (OCI layout plus ``manifest.json``). It is
never used to push: an engine re-digests images and drops manifest annotations.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from zflow.build.cache import Cache
from zflow.build.oci_layout import Descriptor, blobs_of, canonical
from zflow.errors import RuntimeFailure


def _client() -> Any:
    try:
        import docker  # the `docker` package (design card); optional
    except ImportError:
        raise RuntimeFailure("--load-docker needs the Python package 'docker' (pip install docker)") from None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # the package raises several unrelated types for "no engine"
        raise RuntimeFailure(f"no Docker engine is reachable (DOCKER_HOST or /var/run/docker.sock): "
                             f"{str(exc).splitlines()[0][:200]}; the OCI layout was still written") from None
    return client


def archive(cache: Cache, index: Descriptor, arch: str, repo_tag: str) -> bytes:
    """A ``docker load`` archive of the ``arch`` image of an index."""
    manifests = json.loads(cache.read(index.digest))["manifests"]
    chosen = next((m for m in manifests if m["platform"]["architecture"] == arch), None)
    if chosen is None:
        raise RuntimeFailure(f"the image has no linux/{arch} platform to load into Docker")
    manifest = json.loads(cache.read(chosen["digest"]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        wanted = {d.digest for d in blobs_of(cache, index)}
        for digest in sorted({manifest["config"]["digest"], *(x["digest"] for x in manifest["layers"])} & wanted):
            add(f"blobs/sha256/{digest.removeprefix('sha256:')}", cache.read(digest))
        add("manifest.json", canonical([{
            "Config": f"blobs/sha256/{manifest['config']['digest'].removeprefix('sha256:')}",
            "RepoTags": [repo_tag],
            "Layers": [f"blobs/sha256/{x['digest'].removeprefix('sha256:')}" for x in manifest["layers"]]}]))
    return buf.getvalue()


def load(cache: Cache, index: Descriptor, arch: str, repo_tag: str) -> str:
    """Load the image into the reachable engine; returns the engine's image id."""
    client = _client()
    try:
        images = client.images.load(archive(cache, index, arch, repo_tag))
    except Exception as exc:
        raise RuntimeFailure(f"the Docker engine refused the image: {exc}") from None
    return str(images[0].id) if images else "?"
