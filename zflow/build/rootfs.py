"""The base layer without Docker Hub: Debian packages per architecture, from the mirror this
machine's apt is configured with, fetched by ``mmdebstrap --variant=extract``.

mmdebstrap resolves the packages' dependencies and downloads the exact .deb files; those
files (name, version, architecture, sha256) go into the lock and into the cache, and the
base layer is made from them alone, so an online build and a frozen rebuild read the same
bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import unquote

from zflow import settings
from zflow.build.cache import Cache
from zflow.build.layers import Entry, entries_from_tar
from zflow.build.models import Deb
from zflow.errors import Problem, RuntimeFailure, UserError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Documentation is not needed to run; copyright files stay (they are the licences).
_DROP = re.compile(r"^usr/share/(man|info|lintian|locale|bug)/|^usr/share/doc/[^/]+/(?!copyright$)")


def configured_mirror() -> str:
    """The Debian mirror apt uses here (``ZFLOW_DEBIAN_MIRROR`` overrides it)."""
    mirror = settings.debian_mirror()
    if mirror:
        return mirror.rstrip("/")
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^URIs:\s*(\S+)", line) or re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "security" not in m.group(1) and m.group(1).startswith(("http://", "https://")):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def mmdebstrap_version() -> str:
    try:
        out = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return "absent"
    return out.strip().split()[-1] if out.strip() else "unknown"


def parse_deb_name(filename: str) -> tuple[str, str, str]:
    """``libcrypt1_1%3a4.4.33-2_arm64.deb`` -> (name, version, arch) as apt names its files."""
    stem = filename.removesuffix(".deb")
    name, version, arch = stem.split("_")
    return name, unquote(version), arch


def fetch_debs(suite: str, arch: str, packages: list[str], mirror: str, cache: Cache, epoch: int) -> list[Deb]:
    """Resolve and download the packages (and their dependencies) for one architecture."""
    if shutil.which("mmdebstrap") is None:
        raise RuntimeFailure("mmdebstrap is not installed (apt-get install mmdebstrap): it fetches the base packages")
    with tempfile.TemporaryDirectory(prefix="zflow-debs-") as tmp:
        out = Path(tmp) / "debs"
        cmd = ["mmdebstrap", "--quiet", "--variant=extract", f"--architectures={arch}",
               f"--include={','.join(packages)}", "--skip=cleanup/apt/cache",
               f"--extract-hook=sync-out /var/cache/apt/archives {out}", suite, "/dev/null", mirror]
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"mmdebstrap for {arch} did not finish in 15 minutes (mirror {mirror})") from None
        if proc.returncode != 0:
            _explain_failure(proc.stderr, packages, arch, mirror)
        debs = []
        for f in sorted(out.glob("*.deb")):
            data = f.read_bytes()
            digest = cache.put(data)
            name, version, deb_arch = parse_deb_name(f.name)
            debs.append(Deb(name=name, version=version, arch=deb_arch, sha256=digest.removeprefix("sha256:"),
                            size=len(data), filename=f.name))
    if not debs:
        raise RuntimeFailure(f"mmdebstrap fetched no package for {arch} from {mirror}")
    return debs


def _explain_failure(stderr: str, packages: list[str], arch: str, mirror: str) -> None:
    missing = re.findall(r"Unable to locate package (\S+)", stderr)
    missing += re.findall(r"Package '?([^' ]+)'? has no installation candidate", stderr)
    if missing:
        raise UserError([Problem(f"Debian package {name!r} does not exist for {arch} in this suite",
                                 hint="check spec.dependencies") for name in sorted(set(missing))])
    tail = "\n".join(stderr.strip().splitlines()[-6:])
    raise RuntimeFailure(f"mmdebstrap could not fetch the {arch} base from {mirror}:\n{tail}")


# Merged /usr (Debian's layout since bookworm): trixie's packages ship their files under /usr
# only and the loader path /lib/ld-linux-*.so.1 exists through these links alone.
MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def merge_usr(entries: list[Entry]) -> list[Entry]:
    """Move ``/bin``, ``/lib``... under ``/usr`` and link them back, as mmdebstrap does."""
    out: list[Entry] = []
    tops = {"bin", "sbin", "lib"}
    for e in entries:
        top, _, rest = e.path.partition("/")
        if top in MERGED_USR:
            tops.add(top)
            if not rest:
                continue
            e = Entry(f"usr/{e.path}", e.kind, e.data, e.executable, e.target, e.mode)
        out.append(e)
    return [*out, *(Entry(top, "symlink", target=f"usr/{top}") for top in sorted(tops))]


def skeleton() -> list[Entry]:
    """What base-files and passwd would install and an extracted base lacks: a world-writable
    /tmp, root's home, and users root and nobody (so getpwuid and ``~`` work)."""
    return [
        Entry("tmp", "dir", mode=0o1777), Entry("root", "dir"), Entry("var/tmp", "dir", mode=0o1777),
        Entry("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\n"
                                    b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        Entry("etc/group", "file", b"root:x:0:\nnogroup:x:65534:\n"),
    ]


def base_entries(debs: list[Deb], cache: Cache) -> list[Entry]:
    """The files of every package (data.tar), in package-name order, documentation dropped,
    /usr merged."""
    entries: list[Entry] = []
    for deb in sorted(debs, key=lambda d: (d.name, d.arch)):
        path = cache.path("sha256:" + deb.sha256)
        if not path.is_file():
            raise RuntimeFailure(f"{deb.filename} (sha256 {deb.sha256[:12]}) is not in the build cache {cache.root}")
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            entries.extend(e for e in entries_from_tar(tar) if not _DROP.match(e.path))
        if proc.wait() != 0:
            raise RuntimeFailure(f"dpkg-deb could not read {deb.filename}")
    return merge_usr(entries) + skeleton()
