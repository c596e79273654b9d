"""Reproducible layers and OCI layouts without the network: the same entries give the same
bytes whatever their order, cache or directory; the tar is normalised; references pick
https except for loopback."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

from zflow.build.cache import Cache
from zflow.build.layers import Entry, entries_from_tar, write_layer
from zflow.build.oci_layout import image, image_index, write_layout
from zflow.build.registry import Registry, parse_reference

EPOCH = 1704067200
LONG = "opt/zflow/runtime/" + "/".join(["a-rather-long-directory-name"] * 6) + "/module.py"
ENTRIES = [Entry("usr/bin/tool", "file", b"#!/bin/sh\n", executable=True), Entry("usr/lib/x/lib.so", "file", b"\x7fELF"),
           Entry("usr/lib/x/link.so", "symlink", target="lib.so"), Entry(LONG, "file", b"print(1)\n"),
           Entry("./etc/empty", "dir")]


def test_same_entries_same_bytes_in_any_order_and_cache(tmp_path):
    shuffled = ENTRIES[:]
    random.Random(7).shuffle(shuffled)
    a = write_layer(ENTRIES, Cache(tmp_path / "c1"), EPOCH, "test")
    b = write_layer(shuffled, Cache(tmp_path / "elsewhere" / "c2"), EPOCH, "test")
    assert a == b
    data = Cache(tmp_path / "c1").read(a.digest)
    assert data == Cache(tmp_path / "elsewhere" / "c2").read(b.digest)
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == a.diff_id
    assert "sha256:" + hashlib.sha256(data).hexdigest() == a.digest and len(data) == a.size
    assert write_layer(ENTRIES, Cache(tmp_path / "c3"), EPOCH + 1, "test").diff_id != a.diff_id


def test_tar_is_normalised(tmp_path):
    cache = Cache(tmp_path)
    layer = write_layer(ENTRIES, cache, EPOCH, "test")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(cache.read(layer.digest)))) as tar:
        members = tar.getmembers()
    names = [m.name.rstrip("/") for m in members]
    assert names[:3] == ["etc", "etc/empty", "opt"]  # parents were added, before their children
    assert names == sorted(names, key=lambda n: n.split("/")) and LONG in names
    modes = {m.name.rstrip("/"): m.mode for m in members}
    assert modes["usr/bin/tool"] == 0o755 and modes["usr/lib/x/lib.so"] == 0o644 and modes["usr"] == 0o755
    assert all((m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH) for m in members)
    assert all(not m.pax_headers for m in members)
    raw = gzip.decompress(cache.read(layer.digest))
    assert b"././@LongLink" in raw and b"PaxHeader" not in raw  # GNU long names, no pax records


def test_debian_tar_entries_drop_devices_and_copy_hard_links():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, data, link in [("./usr/bin/a", tarfile.REGTYPE, b"A", ""), ("./dev/null", tarfile.CHRTYPE, b"", ""),
                                       ("./run/fifo", tarfile.FIFOTYPE, b"", ""),
                                       ("./usr/bin/b", tarfile.LNKTYPE, b"", "./usr/bin/a")]:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mode = kind, len(data), link, 0o4755
            tar.addfile(info, io.BytesIO(data) if data else None)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        entries = entries_from_tar(tar)
    assert [(e.path, e.kind, e.data, e.executable) for e in entries] == [
        ("usr/bin/a", "file", b"A", True), ("usr/bin/b", "file", b"A", True)]


def test_layout_is_identical_from_two_caches(tmp_path):
    outs = []
    for n in (1, 2):
        cache = Cache(tmp_path / f"cache{n}")
        layer = write_layer(ENTRIES, cache, EPOCH, "layer")
        manifests = {arch: image(cache, arch, [layer], EPOCH, {"Entrypoint": ["/usr/bin/tool"]}, {"t": "x"})[0]
                      for arch in ("amd64", "arm64")}
        index = image_index(cache, manifests, {"t": "x"})
        dest = tmp_path / f"layout{n}"
        (dest / "blobs" / "sha256").mkdir(parents=True)
        (dest / "blobs" / "sha256" / "stale").write_bytes(b"old")
        write_layout(cache, index, dest, "1.0")
        outs.append(dest)
    files = [sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) for d in outs]
    assert files[0] == files[1] and "blobs/sha256/stale" not in files[0]
    for rel in files[0]:
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes()
    top = json.loads((outs[0] / "index.json").read_text())
    assert top["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    assert top["manifests"][0]["mediaType"] == "application/vnd.oci.image.index.v1+json"


def test_https_except_loopback_or_insecure(monkeypatch):
    monkeypatch.delenv("ZFLOW_REGISTRY_USERNAME", raising=False)
    for text, scheme in [("registry.example.org/a/b:1", "https"), ("127.0.0.1:5000/a", "http"),
                         ("localhost:5000/a", "http"), ("[::1]:5000/a", "http"), ("10.0.0.5:5000/a", "https")]:
        ref = parse_reference(text)
        assert Registry(ref).scheme == scheme, text
    assert Registry(parse_reference("10.0.0.5:5000/a"), insecure=True).scheme == "http"
    ref = parse_reference("registry.example.org/team/zscore")
    assert (ref.host, ref.repository, ref.tag) == ("registry.example.org", "team/zscore", "")


def test_cache_files_a_blob_under_its_digest(tmp_path: Path):
    cache = Cache(tmp_path)
    digest = cache.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest() and cache.read(digest) == b"hello"
    assert not list((tmp_path / "blobs").glob(".partial-*"))


def test_base_merges_usr_like_debian():
    from zflow.build.rootfs import merge_usr

    out = merge_usr([Entry("lib", "dir"), Entry("lib/ld-linux-aarch64.so.1", "file", b"ld"),
                     Entry("usr/bin/python3.13", "file", b"py", True), Entry("lib64", "dir")])
    assert [(e.path, e.kind, e.target) for e in out] == [
        ("usr/lib/ld-linux-aarch64.so.1", "file", ""), ("usr/bin/python3.13", "file", ""),
        ("bin", "symlink", "usr/bin"), ("lib", "symlink", "usr/lib"), ("lib64", "symlink", "usr/lib64"),
        ("sbin", "symlink", "usr/sbin")]
