"""Wheels per architecture: binary only (no package code runs at build time), resolved by pip
for the target interpreter with every manylinux tag of the architecture.

Resolution uses ``pip install --dry-run --report`` in isolated mode (the machine's pip
configuration and constraint files would make the result depend on this host), so the lock
gets name, version, URL and sha256 of each wheel. Installation unpacks wheels here: no
``direct_url.json`` with a local path, no console scripts with the host's shebang, no
bytecode, hence the same files on every machine.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from zflow.build.cache import Cache
from zflow.build.layers import Entry
from zflow.build.models import Wheel
from zflow.build.resolve import Arch
from zflow.errors import Problem, RuntimeFailure, UserError

DEFAULT_INDEX = "https://pypi.org/simple"


def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)", req)
    return normalise_name(m.group(1)) if m else ""


def pip_version() -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else "unknown"


def resolve(arch: Arch, python: str, requirements: list[str], runtime: list[str], constraints: list[str],
            index_url: str) -> list[Wheel]:
    """The wheels pip picks for ``arch``; runtime wheels are the closure of the runtime requirements."""
    with tempfile.TemporaryDirectory(prefix="zflow-wheels-") as tmp:
        t = Path(tmp)
        (t / "req.txt").write_text("\n".join([*runtime, *requirements]) + "\n")
        (t / "constraints.txt").write_text("\n".join(constraints) + "\n")
        abi = "cp" + python.replace(".", "")
        cmd = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "install", "--dry-run",
               "--ignore-installed", "--quiet", "--report", str(t / "report.json"), "--only-binary=:all:",
               "--index-url", index_url, "--target", str(t / "target"), "--python-version", python,
               "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
               *(x for tag in arch.manylinux_tags() for x in ("--platform", tag)),
               "-r", str(t / "req.txt"), "-c", str(t / "constraints.txt")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            _explain_failure(proc.stderr, arch, python)
        report = json.loads((t / "report.json").read_text())
    items = report.get("install", [])
    requires = {normalise_name(i["metadata"]["name"]): [
        _req_name(r) for r in i["metadata"].get("requires_dist") or [] if "extra ==" not in r]
        for i in items}
    runtime_names: set[str] = set()
    todo = [_req_name(r) for r in runtime]
    while todo:
        n = todo.pop()
        if n in runtime_names or n not in requires:
            continue
        runtime_names.add(n)
        todo.extend(requires[n])
    wheels = []
    for i in items:
        info = i["download_info"]
        url = info["url"]
        sha = (info.get("archive_info") or {}).get("hashes", {}).get("sha256", "")
        name = normalise_name(i["metadata"]["name"])
        if not sha or not url.endswith(".whl"):
            raise UserError(Problem(f"package {name} resolved to {url.rsplit('/', 1)[-1]}, not a wheel with a sha256"))
        wheels.append(Wheel(name=name, version=i["metadata"]["version"], filename=url.rsplit("/", 1)[-1],
                            sha256=sha, url=url, layer="runtime" if name in runtime_names else "deps"))
    return sorted(wheels, key=lambda w: w.name)


def _explain_failure(stderr: str, arch: Arch, python: str) -> None:
    missing = sorted(set(re.findall(r"No matching distribution found for (\S+)", stderr)))
    if missing:
        raise UserError([Problem(f"no binary wheel of {m} for linux/{arch.name} and Python {python}",
                                 hint="check the name on the index; source-only packages cannot be packaged "
                                 "(no code runs at build time)") for m in missing])
    if "ResolutionImpossible" in stderr or "conflict" in stderr.lower():
        lines = [ln.strip() for ln in stderr.splitlines() if "requested" in ln or "depends on" in ln or "conflict" in ln]
        raise UserError(Problem(f"the requirements conflict for linux/{arch.name}: " + "; ".join(lines[:6]),
                                hint="relax a pin in requirements.txt or ryax_lock.json"))
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    raise RuntimeFailure(f"pip could not resolve the wheels for linux/{arch.name}:\n{tail}")


def is_pure(w: Wheel) -> bool:
    return w.filename.endswith("-none-any.whl")


def check_across_arches(wheels: dict[str, list[Wheel]]) -> None:
    """Equal versions on every architecture, and no pure wheel where another one is binary."""
    problems: list[Problem] = []
    names = sorted({w.name for ws in wheels.values() for w in ws})
    for name in names:
        per = {arch: next((w for w in ws if w.name == name), None) for arch, ws in wheels.items()}
        versions = {arch: w.version if w else "absent" for arch, w in per.items()}
        if len(set(versions.values())) > 1:
            problems.append(Problem(f"package {name} resolves to different versions per architecture: "
                                    + ", ".join(f"{a} {v}" for a, v in versions.items()),
                                    hint=f"pin {name}==VERSION to one that has wheels for every architecture"))
            continue
        kinds = {arch: is_pure(w) for arch, w in per.items() if w}
        if len(set(kinds.values())) > 1:
            pure = [a for a, p in kinds.items() if p]
            problems.append(Problem(f"package {name} has a platform wheel on some architectures but only a pure "
                                    f"(py3-none-any) one on {', '.join(pure)}: that wheel would not work",
                                    hint="pin a version that publishes wheels for every architecture"))
    if problems:
        raise UserError(problems)


def fetch(wheel: Wheel, cache: Cache, offline: bool = False) -> Path:
    """The wheel's file in the cache, downloaded (and its sha256 checked) when missing."""
    digest = "sha256:" + wheel.sha256
    if cache.has(digest):
        return cache.path(digest)
    if offline:
        raise RuntimeFailure(f"{wheel.filename} is not in the build cache {cache.root} and the build is offline "
                             "(--lock frozen): run a build without --lock frozen once to fill the cache")
    try:
        with urllib.request.urlopen(wheel.url, timeout=120) as resp, cache.writer() as out:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeFailure(f"cannot download {wheel.filename} from {wheel.url}: {exc}") from None
    if out.digest != digest:
        cache.path(out.digest).unlink(missing_ok=True)
        raise RuntimeFailure(f"{wheel.filename}: downloaded sha256 {out.digest} differs from the lock's {digest}")
    return cache.path(digest)


def wheel_entries(path: Path, prefix: str) -> list[Entry]:
    """A wheel's files under ``prefix`` as pip would install them, minus scripts and data files."""
    out: list[Entry] = []
    with zipfile.ZipFile(path) as zf:
        data_dir = next((n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".data")), None)
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            if data_dir and name.startswith(data_dir + "/"):
                rest = name[len(data_dir) + 1:]
                scheme, _, sub = rest.partition("/")
                if scheme not in ("purelib", "platlib"):
                    continue  # scripts carry the build host's shebang; headers and data are not run
                name = sub
            mode = (info.external_attr >> 16) & 0o777
            out.append(Entry(f"{prefix}/{name}", "file", zf.read(info), bool(mode & 0o111)))
    return out


def tree_digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()
