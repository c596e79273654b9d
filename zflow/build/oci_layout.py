"""OCI image configs, manifests, the image index and the on-disk image layout.

JSON is written canonically (sorted keys, no spaces) so equal inputs give equal digests.
The layout (a directory, or the same as one tar) has an ``index.json`` pointing at one image index (tag in ``ref.name``) that holds one
manifest per platform, which is what ``skopeo copy --all oci:DIR:TAG`` and registries expect.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zflow.build.cache import Cache
from zflow.build.layers import LAYER_MEDIA_TYPE, Layer

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def put_json(cache: Cache, media_type: str, value: Any) -> Descriptor:
    data = canonical(value)
    return Descriptor(media_type, cache.put(data), len(data))


def image(cache: Cache, arch: str, layers: list[Layer], epoch: int, config: dict[str, Any],
          labels: dict[str, str]) -> tuple[Descriptor, Descriptor]:
    """Config and manifest of one platform's image: (manifest, config) descriptors."""
    created = iso(epoch)
    cfg = {
        "created": created, "architecture": arch, "os": "linux",
        "config": {**config, "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": layer.created_by} for layer in layers],
    }
    config_desc = put_json(cache, CONFIG, cfg)
    manifest = {
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": config_desc.to_json(),
        "layers": [Descriptor(LAYER_MEDIA_TYPE, layer.digest, layer.size).to_json() for layer in layers],
        "annotations": {"org.opencontainers.image.created": created, **labels},
    }
    return put_json(cache, MANIFEST, manifest), config_desc


def image_index(cache: Cache, manifests: dict[str, Descriptor], annotations: dict[str, str]) -> Descriptor:
    index = {
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [m.to_json(platform={"architecture": arch, "os": "linux"}) for arch, m in manifests.items()],
        "annotations": annotations,
    }
    return put_json(cache, INDEX, index)


def blobs_of(cache: Cache, index: Descriptor) -> list[Descriptor]:
    """Every blob an index reaches: layers and configs first, then manifests, the index last
    (the order a registry wants them pushed in)."""
    leaves: list[Descriptor] = []
    manifests: list[Descriptor] = []
    for m in json.loads(cache.read(index.digest))["manifests"]:
        md = Descriptor(m["mediaType"], m["digest"], m["size"])
        manifest = json.loads(cache.read(md.digest))
        for d in [manifest["config"], *manifest["layers"]]:
            desc = Descriptor(d["mediaType"], d["digest"], d["size"])
            if desc not in leaves:
                leaves.append(desc)
        manifests.append(md)
    return [*leaves, *manifests, index]


def write_layout(cache: Cache, index: Descriptor, dest: Path, tag: str) -> None:
    """An OCI image layout directory holding the index under ``tag``; old blobs are removed."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for d in blobs_of(cache, index):
        hexd = d.digest.removeprefix("sha256:")
        wanted.add(hexd)
        target = blobs / hexd
        if not target.exists():
            tmp = target.with_name(f".{hexd}.{os.getpid()}")
            try:
                os.link(cache.path(d.digest), tmp)
            except OSError:
                shutil.copyfile(cache.path(d.digest), tmp)
            os.replace(tmp, target)
    for stale in blobs.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    (dest / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (dest / "index.json").write_bytes(canonical({
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [index.to_json(annotations={REF_NAME: tag})]}))


def write_archive(cache: Cache, index: Descriptor, path: Path, tag: str) -> None:
    """The same layout as one tar (``oci-archive:PATH:TAG`` for skopeo), byte-reproducible."""
    top = canonical({"schemaVersion": 2, "mediaType": INDEX,
                     "manifests": [index.to_json(annotations={REF_NAME: tag})]})
    members: list[tuple[str, int, Any]] = [
        ("blobs", -1, None), ("blobs/sha256", -1, None),
        *sorted((f"blobs/sha256/{d.digest.removeprefix('sha256:')}", d.size, cache.path(d.digest))
                for d in set(blobs_of(cache, index))),
        ("index.json", len(top), top), ("oci-layout", -1, canonical({"imageLayoutVersion": "1.0.0"}))]
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, size, source in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if source is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(source, bytes):
                info.size, info.mode = len(source), 0o644
                tar.addfile(info, io.BytesIO(source))
            else:
                info.size, info.mode = size, 0o644
                with open(source, "rb") as f:
                    tar.addfile(info, f)
    os.replace(tmp, path)
