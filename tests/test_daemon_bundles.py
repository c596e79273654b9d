"""Operator code shipping: content-addressed bundles over Zenoh, verified, cached, and run in a
per-bundle venv with the declared requirements (a wheel built here, no network)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from daemon_helpers import in_process_daemons, lines, pipeline, wait_until, write_operators

from zflow import codec
from zflow.daemon.bundles import BundleCache, BundleServer, make_bundle
from zflow.daemon.instance_deploy import create_instance, delete_instance
from zflow.errors import RuntimeFailure

pytestmark = pytest.mark.timeout(120)


def build_wheel(dest: Path) -> Path:
    """A minimal pure-Python wheel: package ``zflowtestpkg`` with ``VALUE = 42``."""
    path = dest / "zflowtestpkg-0.1-py3-none-any.whl"
    info = "zflowtestpkg-0.1.dist-info"
    files = {
        "zflowtestpkg/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: zflowtestpkg\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: zflow-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr(f"{info}/RECORD", record)
    return path


def test_digest_covers_files_and_requirements(tmp_path):
    ops = write_operators(tmp_path / "ops").parent
    (ops / "__pycache__").mkdir()
    (ops / "__pycache__" / "x.pyc").write_bytes(b"junk")
    a, _ = make_bundle(ops)
    b, _ = make_bundle(ops)
    assert a.digest == b.digest and a.files == ("nodes.py",)
    c, _ = make_bundle(ops, ["msgpack"])
    (ops / "helper.py").write_text("X = 1\n")
    d, _ = make_bundle(ops)
    assert len({a.digest, c.digest, d.digest}) == 3


def test_fetch_verifies_and_caches(zsession, tmp_path):
    ops = write_operators(tmp_path / "ops").parent
    bundle, payload = make_bundle(ops)
    cache = BundleCache(tmp_path / "cache")
    server = BundleServer(zsession)
    try:
        with pytest.raises(RuntimeFailure, match="is not served by anyone"):
            cache.ensure(zsession, bundle.digest, timeout=1.0)
        forged = codec.decode(payload, codec.MSGPACK)
        forged["files"]["nodes.py"] = b"import os; os.system('evil')"
        server.add(bundle.digest, codec.encode(forged)[0])
        with pytest.raises(RuntimeFailure, match="failed verification"):
            cache.ensure(zsession, bundle.digest, timeout=2.0)
        assert not cache.has(bundle.digest)
        server.add(bundle.digest, payload)
        files = cache.ensure(zsession, bundle.digest, timeout=2.0)
    finally:
        server.close()
    assert (files / "nodes.py").read_text() == (ops / "nodes.py").read_text()
    assert cache.ensure(zsession, bundle.digest) == files  # cached: no deployer needed any more
    assert cache.payload(bundle.digest) == payload


def test_node_runs_from_its_bundle_with_declared_requirements(router, zsession, tmp_path):
    ops_dir = tmp_path / "ops"
    ops = write_operators(ops_dir, requirements="./zflowtestpkg-0.1-py3-none-any.whl\nmsgpack\n")
    build_wheel(ops_dir)
    (ops_dir / "nodes.py").write_text((ops_dir / "nodes.py").read_text().replace(
        'return {**value, "i": value["i"] * 2}',
        'import zflowtestpkg\n    return {**value, "i": value["i"] * 2, "v": zflowtestpkg.VALUE}'))
    out = tmp_path / "out.jsonl"
    with in_process_daemons(router, tmp_path, "d1") as _daemons:
        rec = create_instance(zsession, pipeline(ops, out), instance="b1")
        assert wait_until(lambda: lines(out) >= 2, 30)
        row = json.loads(out.read_text().splitlines()[0])
        digest = rec.graph["nodes"]["sink"]["deploy"]["bundle"]["digest"]
        assert row["v"] == 42  # installed into the bundle's venv only
        assert row["prefix"] == str(tmp_path / "d1" / "bundles" / digest / "env")
        delete_instance(zsession, "b1")
    with pytest.raises(ImportError):
        __import__("zflowtestpkg")
