"""Building a real action image end to end: the Debian mirror and PyPI for the first build,
then every guarantee checked against independent parts (gzip, tarfile, skopeo, umoci, a real
``docker-registry``, qemu-aarch64-static, an offline network namespace).

The first build runs once per session (its cache is ``$ZFLOW_TEST_BUILD_CACHE`` when set, so
downloads can be kept between sessions); the second build starts from a cache without any
layer memo, so every layer is written again.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from build_helpers import (
    blob,
    gunzip,
    layout_index,
    manifests,
    need,
    registry,
    seed_cache,
    sha256,
    stop,
    token_service,
)

ROOT = Path(__file__).resolve().parent.parent
ZSCORE = ROOT / "operators" / "ryax" / "zscore-detector"
EPOCH = 1704067200

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False


def zflow(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, umask: int | None = None,
          netns: str | None = None, timeout: float = 800) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("SOURCE_DATE_EPOCH", None)
    cmd = [sys.executable, "-m", "zflow", *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def digests(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith("sha256:"):
            out[parts[0]] = parts[1]
    return out


@dataclass
class Built:
    action: Path
    layout: Path
    cache: Path
    digests: dict[str, str]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    need("mmdebstrap", "dpkg-deb")
    if not (_reachable("deb.debian.org", 80) and _reachable("pypi.org", 443)):
        pytest.skip("the Debian mirror or PyPI is not reachable")
    tmp = tmp_path_factory.mktemp("build")
    cache = Path(os.environ.get("ZFLOW_TEST_BUILD_CACHE") or tmp / "cache")
    action = tmp / "zscore"
    shutil.copytree(ZSCORE, action)
    proc = zflow("build", "action", str(action), "--cache", str(cache), "-o", str(tmp / "layout"))
    assert proc.returncode == 0, proc.stderr
    d = digests(proc.stdout)
    assert set(d) == {"linux/amd64", "linux/arm64", "index"}, proc.stdout
    return Built(action, tmp / "layout", cache, d)


@pytest.fixture(scope="session")
def offline_ns() -> Iterator[str | None]:
    """A network namespace with only loopback (no route to the mirror or the index), if root."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        yield None
        return
    name = f"zfbuild{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        yield None
        return
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@pytest.fixture(scope="session")
def rebuilt(built, tmp_path_factory, offline_ns) -> tuple[Built, bool]:
    """A frozen rebuild from another directory, umask 077, touched mtimes, a cache without layer
    memos, and (as root) inside a namespace where the mirror and the index are unreachable."""
    tmp = tmp_path_factory.mktemp("rebuild")
    action = tmp / "elsewhere" / "zscore-copy"
    shutil.copytree(built.action, action)
    for i, p in enumerate(sorted(action.rglob("*"))):
        os.utime(p, (1_000_000 + i, 2_000_000_000 - i))
    (action / "ryax_handler.py").chmod(0o600)
    cache = seed_cache(built.cache, tmp / "cache")
    proc = zflow("build", "action", str(action), "--lock", "frozen", "--cache", str(cache), "-o",
                 str(tmp / "layout"), umask=0o077, netns=offline_ns, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return Built(action, tmp / "layout", cache, digests(proc.stdout)), offline_ns is not None


def test_rebuild_elsewhere_gives_identical_digests(built, rebuilt):
    again, _ = rebuilt
    assert again.digests == built.digests
    assert (again.layout / "index.json").read_bytes() == (built.layout / "index.json").read_bytes()
    assert sorted(p.name for p in (again.layout / "blobs" / "sha256").iterdir()) == \
        sorted(p.name for p in (built.layout / "blobs" / "sha256").iterdir())


def test_frozen_rebuild_is_offline(rebuilt, offline_ns):
    _, was_offline = rebuilt
    if not was_offline:
        pytest.skip("needs root for a network namespace")
    probe = subprocess.run(["ip", "netns", "exec", offline_ns, sys.executable, "-c",
                            "import socket; socket.create_connection(('deb.debian.org', 80), timeout=3)"],
                           capture_output=True, text=True)
    assert probe.returncode != 0  # the namespace really has no way out


def test_layers_are_normalised_and_diff_ids_match(built):
    index = layout_index(built.layout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in index["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                           {"architecture": "arm64", "os": "linux"}]
    for arch, manifest in manifests(built.layout).items():
        config = json.loads(blob(built.layout, manifest["config"]["digest"]))
        assert config["architecture"] == arch and config["created"] == "2024-01-01T00:00:00Z"
        assert len(config["history"]) == len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 4
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            data = blob(built.layout, layer["digest"])
            assert sha256(data) == layer["digest"] and len(data) == layer["size"]
            assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # our header: no mtime, no OS
            tar_bytes = gunzip(data)
            assert sha256(tar_bytes) == diff_id
            names = []
            with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
                for m in tar.getmembers():
                    assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH), m.name
                    assert m.type in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE), m.name
                    special = m.name.rstrip("/") in ("tmp", "var/tmp") and m.mode == 0o1777
                    assert (m.mode in (0o644, 0o755, 0o777) or special) and not m.pax_headers, m.name
                    names.append(m.name.rstrip("/"))
            assert names == sorted(names, key=lambda n: n.split("/"))
            seen = set()
            for n in names:  # parents first
                parent = n.rpartition("/")[0]
                assert not parent or parent in seen, n
                seen.add(n)
    lock = json.loads((built.action / "zflow_lock.json").read_text())
    assert lock["digests"]["index"] == built.digests["index"]
    assert {d["name"] for d in lock["debs"]["arm64"]} >= {"python3.11-minimal", "libstdc++6", "libc6"}
    assert all(d["arch"] in ("arm64", "all") and len(d["sha256"]) == 64 for d in lock["debs"]["arm64"])
    numpy = {a: next(w for w in ws if w["name"] == "numpy") for a, ws in lock["wheels"].items()}
    assert "aarch64" in numpy["arm64"]["filename"] and "x86_64" in numpy["amd64"]["filename"]
    assert numpy["arm64"]["version"] == numpy["amd64"]["version"]


def test_oci_archive_is_reproducible_and_readable(built, tmp_path):
    need("skopeo")
    tars = []
    for n in (1, 2):
        proc = zflow("build", "action", str(built.action), "--cache", str(built.cache), "-o", str(tmp_path / f"l{n}"),
                     "--tar", str(tmp_path / f"image{n}.tar"))
        assert proc.returncode == 0, proc.stderr
        tars.append((tmp_path / f"image{n}.tar").read_bytes())
    assert tars[0] == tars[1]
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{tmp_path}/image1.tar:1.0"],
                         capture_output=True, check=True).stdout
    assert sha256(raw) == built.digests["index"]
    info = json.loads(subprocess.run(["skopeo", "inspect", "--override-arch", "arm64",
                                      f"oci-archive:{tmp_path}/image1.tar:1.0"], capture_output=True,
                                     check=True, text=True).stdout)
    assert info["Architecture"] == "arm64"


def test_frozen_refuses_a_changed_handler(built, tmp_path):
    action = tmp_path / "zscore"
    shutil.copytree(built.action, action)
    (action / "ryax_handler.py").write_text((action / "ryax_handler.py").read_text() + "\n# edited\n")
    (action / "notes.txt").write_text("new file")
    proc = zflow("build", "action", str(action), "--lock", "frozen", "--cache", str(built.cache), "-o",
                 str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "action file ryax_handler.py changed" in proc.stderr and "action file notes.txt was added" in proc.stderr
    assert "zflow_lock.json" in proc.stderr and "Traceback" not in proc.stderr


def _unpack(ref: str, arch: str, tmp: Path) -> Path:
    need("skopeo", "umoci")
    tmp.mkdir(parents=True, exist_ok=True)
    for cmd in (["skopeo", "copy", "-q", "--src-tls-verify=false", "--override-arch", arch, ref,
                 f"oci:{tmp}/single:{arch}"],
                ["umoci", "unpack", "--rootless", "--image", f"{tmp}/single:{arch}", str(tmp / "bundle")]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, (cmd, proc.stderr)
    return tmp / "bundle" / "rootfs"


SAMPLE = {"table": [{"t": i, "v": 10.0 + (i % 3) * 0.1} for i in range(40)] + [{"t": 40, "v": 55.0}],
          "column": "v", "threshold": 4.0}


def _expected_outliers() -> list[int]:
    import statistics

    xs = [r["v"] for r in SAMPLE["table"]]
    mean, std = statistics.fmean(xs), statistics.pstdev(xs)
    return [r["t"] for r in SAMPLE["table"] if abs(r["v"] - mean) / std > SAMPLE["threshold"]]


def _under_qemu(rootfs: Path, python: str) -> subprocess.CompletedProcess[str]:
    """The arm64 image's interpreter runs the image's entrypoint module on SAMPLE (binfmt_misc is
    not mounted here: qemu is called explicitly, ``-L`` for the image's loader and libraries)."""
    env = {"PYTHONPATH": f"{rootfs}/opt/zflow/deps:{rootfs}/opt/zflow/runtime", "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run(["qemu-aarch64-static", "-L", str(rootfs), f"{rootfs}/usr/bin/{python}", "-m",
                           "zflow.build.run_action", f"{rootfs}/opt/zflow/action"], input=json.dumps(SAMPLE),
                          capture_output=True, text=True, env=env, timeout=300)


def _check_run(proc: subprocess.CompletedProcess[str], machine: str) -> None:
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["machine"] == machine
    assert [a["t"] for a in out["outputs"][0]["anomalies"]] == _expected_outliers() == [40]


def test_push_pull_and_independent_oracles(built, tmp_path):
    with registry(tmp_path / "reg") as host:
        ref = f"{host}/zscore:1.0"
        proc = zflow("build", "action", str(built.action), "--cache", str(built.cache), "-o",
                     str(tmp_path / "layout"), "--push", ref)
        assert proc.returncode == 0, proc.stderr
        assert f"pushed {ref}@{built.digests['index']}" in proc.stdout
        req = urllib.request.Request(f"http://{host}/v2/zscore/manifests/1.0",
                                     headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        with urllib.request.urlopen(req) as resp:
            assert resp.read() == blob(built.layout, built.digests["index"])
            assert resp.headers["Docker-Content-Digest"] == built.digests["index"]
        again = zflow("build", "action", str(built.action), "--cache", str(built.cache), "-o",
                      str(tmp_path / "layout"), "--push", f"{host}/zscore")  # tag defaults to the version
        assert again.returncode == 0 and "(0 blobs and manifests uploaded, 10 already there" in again.stdout, again.stdout

        need("skopeo")
        for arch, manifest in manifests(built.layout).items():
            info = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--override-arch", arch,
                                              f"docker://{ref}"], check=True, capture_output=True,
                                             text=True).stdout)
            assert info["Architecture"] == arch
            assert info["Layers"] == [x["digest"] for x in manifest["layers"]]
        subprocess.run(["skopeo", "copy", "-q", "--all", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{tmp_path}/copy:1.0"], check=True, capture_output=True)
        copied = json.loads((tmp_path / "copy" / "index.json").read_text())["manifests"][0]["digest"]
        assert copied == built.digests["index"]

        need("qemu-aarch64-static")
        rootfs = _unpack(f"docker://{ref}", "arm64", tmp_path / "arm64")
        _check_run(_under_qemu(rootfs, "python3.11"), "aarch64")
        chroot = shutil.which("chroot")
        if os.geteuid() == 0 and chroot:  # amd64: the image's own loader and libraries, through chroot
            rootfs = _unpack(f"docker://{ref}", "amd64", tmp_path / "amd64")
            run = subprocess.run([chroot, str(rootfs), "/usr/bin/python3.11", "-m", "zflow.build.run_action",
                                  "/opt/zflow/action"], input=json.dumps(SAMPLE), capture_output=True, text=True,
                                 env={"PYTHONPATH": "/opt/zflow/deps:/opt/zflow/runtime", "PATH": "/usr/bin:/bin",
                                      "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
            _check_run(run, "x86_64")


def _push_args(built: Built, tmp_path: Path, ref: str) -> tuple[list[str], dict[str, str]]:
    """A cached build pushed to ``ref``, and an environment without any registry credentials."""
    return (["build", "action", str(built.action), "--cache", str(built.cache), "-o", str(tmp_path / "l"),
             "--push", ref], {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker")})


def test_registry_auth(built, tmp_path):
    with registry(tmp_path / "reg", user="builder", password="s3cret") as host:
        args, home = _push_args(built, tmp_path, f"{host}/zscore:auth")
        proc = zflow(*args, env=home)
        assert proc.returncode == 1 and f"registry {host} requires authentication" in proc.stderr, proc.stderr
        proc = zflow(*args, env={**home, "ZFLOW_REGISTRY_USERNAME": "builder", "ZFLOW_REGISTRY_PASSWORD": "wrong"})
        assert proc.returncode == 1 and "refused the credentials of user 'builder'" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        (tmp_path / "docker").mkdir()
        (tmp_path / "docker" / "config.json").write_text(json.dumps(
            {"auths": {host: {"auth": base64.b64encode(b"builder:s3cret").decode()}}}))
        proc = zflow(*args, env=home)
        assert proc.returncode == 0 and f"pushed {host}/zscore:auth@{built.digests['index']}" in proc.stdout, \
            proc.stderr
        proc = zflow(*args, env={**home, "DOCKER_CONFIG": str(tmp_path / "none"),
                                 "ZFLOW_REGISTRY_USERNAME": "builder", "ZFLOW_REGISTRY_PASSWORD": "s3cret"})
        assert proc.returncode == 0 and "0 blobs and manifests uploaded" in proc.stdout, proc.stdout


def test_registry_bearer_token_auth(built, tmp_path):
    with token_service(tmp_path / "token", "builder", "t0ken") as svc, \
            registry(tmp_path / "reg", token=svc) as host:
        args, home = _push_args(built, tmp_path, f"{host}/team/zscore:bearer")
        proc = zflow(*args, env=home)
        assert proc.returncode == 1 and f"token service {svc.realm} refused (401)" in proc.stderr, proc.stderr
        proc = zflow(*args, env={**home, "ZFLOW_REGISTRY_USERNAME": "builder", "ZFLOW_REGISTRY_PASSWORD": "t0ken"})
        assert proc.returncode == 0 and f"pushed {host}/team/zscore:bearer@{built.digests['index']}" in proc.stdout, \
            proc.stderr


def test_unreachable_registry_and_missing_docker_engine(built, tmp_path):
    from zflow.transport.session import free_port

    port = free_port()
    proc = zflow("build", "action", str(built.action), "--cache", str(built.cache), "-o", str(tmp_path / "l"),
                 "--push", f"127.0.0.1:{port}/zscore")
    assert proc.returncode == 1 and f"cannot reach registry http://127.0.0.1:{port}: connection refused" in \
        proc.stderr, proc.stderr
    proc = zflow("build", "action", str(built.action), "--cache", str(built.cache), "-o", str(tmp_path / "l"),
                 "--load-docker", env={"DOCKER_HOST": f"tcp://127.0.0.1:{port}"})
    assert proc.returncode == 1 and "no Docker engine is reachable" in proc.stderr and "Traceback" not in proc.stderr


def test_docker_load_archive_reads_back_with_skopeo(built, tmp_path):
    """What --load-docker hands an engine, checked by an independent reader (no engine here)."""
    need("skopeo")
    from zflow.build import docker_engine
    from zflow.build.cache import Cache
    from zflow.build.oci_layout import INDEX, Descriptor

    data = blob(built.layout, built.digests["index"])
    index = Descriptor(INDEX, built.digests["index"], len(data))
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_engine.archive(Cache(built.cache), index, "arm64", "zscore:1.0"))
    config = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"docker-archive:{archive}"],
                            capture_output=True, check=True).stdout
    assert sha256(config) == manifests(built.layout)["arm64"]["config"]["digest"]


def test_editing_the_handler_moves_only_the_action_layer(built, tmp_path):
    action = tmp_path / "zscore"
    shutil.copytree(built.action, action)
    (action / "ryax_handler.py").write_text((action / "ryax_handler.py").read_text() + "\n# v2\n")
    proc = zflow("build", "action", str(action), "--cache", str(built.cache), "-o", str(tmp_path / "layout"))
    assert proc.returncode == 0, proc.stderr
    before, after = manifests(built.layout), manifests(tmp_path / "layout")
    for arch in before:
        old = [x["digest"] for x in before[arch]["layers"]]
        new = [x["digest"] for x in after[arch]["layers"]]
        assert old[:3] == new[:3] and old[3] != new[3]



def test_builder_operator_over_zenoh(built, tmp_path):
    """A builder deployed by the system flow: ordered statuses, the local digest, a late query,
    idempotent ids, equal requests answered from the memo, malformed requests answered."""
    from zflow import codec, keyexprs
    from zflow.transport import EmbeddedRouter, open_session

    action = tmp_path / "zscore"
    shutil.copytree(built.action, action)
    (action / "nonce.txt").write_text(os.urandom(8).hex())  # a request no builder has seen
    local = zflow("build", "action", str(action), "--cache", str(built.cache), "-o", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    expected = digests(local.stdout)
    with EmbeddedRouter() as router, open_session(router.client_options()) as session:
        statuses: list[dict] = []
        results: list[dict] = []
        subs = [session.declare_subscriber(keyexprs.build_action("status"), lambda s: statuses.append(
                    codec.decode(s.payload.to_bytes(), str(s.encoding)))),
                session.declare_subscriber(keyexprs.build_action("result"), lambda s: results.append(
                    codec.decode(s.payload.to_bytes(), str(s.encoding))))]
        proc = subprocess.Popen([sys.executable, "-m", "zflow", "run", str(ROOT / "descriptors" / "builder.yaml"),
                                 "--connect", router.endpoint, "-q"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "ZFLOW_BUILD_CACHE": str(built.cache)})
        try:
            deadline = time.monotonic() + 60
            while not list(session.liveliness().get(keyexprs.builder_alive(), timeout=2.0)):
                assert proc.poll() is None and time.monotonic() < deadline, "builder did not come up"
                time.sleep(0.2)
            first = zflow("build", "action", str(action), "--via-zenoh", "--connect", router.endpoint)
            assert first.returncode == 0, first.stderr
            assert digests(first.stdout) == expected
            build_id = first.stdout.split("build ")[-1].split()[0]
            mine = [s for s in statuses if s["id"] == build_id]
            assert [s["seq"] for s in mine] == list(range(1, len(mine) + 1))
            assert [s["step"] for s in mine][:3] == ["accepted", "fetched", "resolve"]
            assert mine[-1]["step"] == "image" and "linux/arm64" in mine[-1]["detail"]

            late = [codec.decode(r.ok.payload.to_bytes(), str(r.ok.encoding))
                    for r in session.get(keyexprs.build_action("result", build_id), timeout=5.0) if r.ok]
            assert len(late) == 1 and late[0]["index"] == expected["index"] and late[0]["ok"]

            second = zflow("build", "action", str(action), "--via-zenoh", "--connect", router.endpoint)
            assert second.returncode == 0 and "(cached)" in second.stdout, second.stdout
            assert digests(second.stdout) == expected

            before = len(statuses)
            seen = len(results)
            body, ctype = codec.encode({"bundle": "0" * 64})
            session.put(keyexprs.build_action("req", build_id), body, encoding=ctype)  # the same id again
            body, ctype = codec.encode({"bundle": "xyz", "lock": "fast"})
            session.put(keyexprs.build_action("req", "bad-1"), body, encoding=ctype)
            session.put(keyexprs.build_action("req", "bad-2"), b"\xff\x00", encoding="application/octet-stream")
            deadline = time.monotonic() + 30
            while len(results) < seen + 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            by_id = {r["id"]: r for r in results[seen:]}
            assert by_id[build_id]["index"] == expected["index"]  # the stored answer, not a new build
            assert not [s for s in statuses[before:] if s["id"] == build_id]
            bad = by_id["bad-1"]
            assert not bad["ok"] and bad["exit_code"] == 2
            assert any(e.startswith("request bundle:") for e in bad["errors"]), bad["errors"]
            assert any(e.startswith("request lock:") for e in bad["errors"]), bad["errors"]
            assert not by_id["bad-2"]["ok"] and by_id["bad-2"]["exit_code"] == 2
        finally:
            for sub in subs:
                sub.undeclare()
            stop(proc)


def test_ryax_lock_pins_and_resolution_refusals(built, tmp_path):
    """``ryax_lock.json`` pins win; a pin that contradicts a requirement, and a package without
    wheels, are exit 2 naming the package (pip's resolution on the real index)."""
    action = tmp_path / "zscore"
    shutil.copytree(built.action, action)
    (action / "ryax_lock.json").write_text(json.dumps({"python": {"pythonVersion": "3.11.2",
                                                                  "lockedRequirements": "numpy==2.1.3\n"}}))
    args = ["--cache", str(built.cache), "-o", str(tmp_path / "out"), "--platform", "amd64"]
    proc = zflow("build", "action", str(action), *args)
    assert proc.returncode == 0, proc.stderr
    lock = json.loads((action / "zflow_lock.json").read_text())
    assert [w["version"] for w in lock["wheels"]["amd64"] if w["name"] == "numpy"] == ["2.1.3"]
    assert lock["inputs"]["constraints"] == ["numpy==2.1.3"] and list(lock["wheels"]) == ["amd64"]

    (action / "requirements.txt").write_text("numpy>=2.2\n")
    proc = zflow("build", "action", str(action), *args)
    assert proc.returncode == 2 and "requirements conflict for linux/amd64" in proc.stderr and "numpy" in \
        proc.stderr, proc.stderr
    (action / "requirements.txt").write_text("zflow-no-such-package-x9\n")
    proc = zflow("build", "action", str(action), *args)
    assert proc.returncode == 2 and "no binary wheel of zflow-no-such-package-x9 for linux/amd64" in proc.stderr, \
        proc.stderr


WORKFLOW = """\
apiVersion: ryax.tech/v2.0
kind: Workflows
spec:
  id: packtest
  human_name: Two actions to package
  actions_path: [actions]
  actions:
    - {id: tick, from: emit-every, inputs: {interval: 1s, count: 1}}
    - {id: detect, from: zscore-detector, inputs: {table: [{v: 1.0}], column: v, threshold: 2.0}}
"""


def test_workflow_build_packages_every_action(built, tmp_path):
    for name in ("emit-every", "zscore-detector"):
        shutil.copytree(ROOT / "operators" / "ryax" / name, tmp_path / "actions" / name,
                        ignore=shutil.ignore_patterns("zflow_lock.json", "__pycache__"))
    (tmp_path / "workflow.yaml").write_text(WORKFLOW)
    with registry(tmp_path / "reg") as host:
        proc = zflow("workflow", "build", str(tmp_path), "--cache", str(built.cache), "-o", str(tmp_path / "out"),
                     "--platform", "amd64", "--push", f"{host}/acme", "-q")
        assert proc.returncode == 0, proc.stderr
        for name in ("emit-every", "zscore-detector"):
            assert f"{name}:" in proc.stdout and f"pushed {host}/acme/{name}:1.0@sha256:" in proc.stdout
            assert (tmp_path / "actions" / name / "zflow_lock.json").is_file()
            assert list(manifests(tmp_path / "out" / name)) == ["amd64"]
        with urllib.request.urlopen(f"http://{host}/v2/_catalog") as resp:
            assert json.loads(resp.read())["repositories"] == ["acme/emit-every", "acme/zscore-detector"]


def test_python_313_on_trixie_runs_under_qemu(built, tmp_path):
    """Python 3.13 comes from Debian trixie (packages only under /usr: the merged-/usr links carry
    the loader path); the arm64 image runs the handler."""
    need("qemu-aarch64-static")
    action = tmp_path / "zscore313"
    shutil.copytree(ZSCORE, action, ignore=shutil.ignore_patterns("zflow_lock.json", "__pycache__"))
    meta = action / "ryax_metadata.yaml"
    meta.write_text(meta.read_text().replace('version: "3.11"', 'version: "3.13"'))
    proc = zflow("build", "action", str(action), "--cache", str(built.cache), "-o", str(tmp_path / "layout"),
                 "--platform", "arm64")
    assert proc.returncode == 0, proc.stderr
    lock = json.loads((action / "zflow_lock.json").read_text())
    assert lock["inputs"]["suite"] == "trixie"
    assert any(d["name"] == "python3.13-minimal" for d in lock["debs"]["arm64"])
    assert all("cp313" in w["filename"] or "abi3" in w["filename"] or "none-any" in w["filename"]
               for w in lock["wheels"]["arm64"])
    rootfs = _unpack(f"oci:{tmp_path / 'layout'}:1.0", "arm64", tmp_path / "unpacked")
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777 and (rootfs / "etc" / "passwd").is_file()
    _check_run(_under_qemu(rootfs, "python3.13"), "aarch64")


def test_a_daemon_hosts_the_builder_system_flow(built, tmp_path, monkeypatch):
    """``descriptors/builder.yaml`` deployed as an instance on an edge daemon answers builds."""
    from daemon_helpers import in_process_daemons

    from zflow import keyexprs
    from zflow.transport import EmbeddedRouter, open_session

    monkeypatch.setenv("ZFLOW_BUILD_CACHE", str(built.cache))
    with EmbeddedRouter() as router, in_process_daemons(router, tmp_path, "edge-1"), \
            open_session(router.client_options()) as session:
        created = zflow("instance", "create", str(ROOT / "descriptors" / "builder.yaml"), "--id", "b1", "--connect",
                        router.endpoint, timeout=120)
        assert created.returncode == 0, created.stderr
        deadline = time.monotonic() + 60
        while not [r for r in session.liveliness().get(keyexprs.builder_alive("zflow-builder-b1"), timeout=2.0)]:
            assert time.monotonic() < deadline, "the daemon's builder did not come up"
            time.sleep(0.2)
        proc = zflow("build", "action", str(built.action), "--via-zenoh", "--connect", router.endpoint)
        assert proc.returncode == 0, proc.stderr
        assert digests(proc.stdout) == built.digests
        zflow("instance", "delete", "b1", "--connect", router.endpoint)
