"""Operator code shipping: content-addressed bundles served and fetched over Zenoh.

The deploying side hashes each operator's directory (sha256 over the sorted files and the
declared requirements) and serves it under ``zflow/ctl/bundle/<digest>``. A bundle never
carries secrets: files named like keys, tokens or secrets, or whose content is a private key,
a bootstrap token or a lone random token, are left out (and named), as is whatever the
directory's ``.zflowignore`` lists (gitignore-style globs; ``dir/`` for a directory;
``!pattern`` takes a file back, never a secret); a daemon lacking a
bundle fetches it, checks the hash, caches it under its data dir and installs the declared
Python requirements into a per-bundle venv (``--system-site-packages``, so zflow and
the daemon's own packages stay visible). Daemons serve their cache too, so a node re-placed
after its deployer went away still finds its code.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zflow import codec, keyexprs
from zflow.errors import RuntimeFailure, UserError

SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
IGNORE_FILE = ".zflowignore"
#: File names never shipped, whatever the ignore file says.
SECRET_NAMES = ("*.key", "*-key.pem", "*_key.pem", "*.secret", "*.token", "*.p12", "*.pfx", "*.jks",
                "*.keystore", "id_rsa*", "id_ecdsa*", "id_ed25519*", ".env", ".env.*", ".netrc",
                "credentials", "credentials.*")
#: Content never shipped: PEM/OpenSSH private keys, zflow bootstrap tokens, a file that is nothing
#: but one long random token (``openssl rand -hex 32 > cluster.secret`` under another name).
SECRET_CONTENT = (
    (re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(rb"\bzft1\.[A-Za-z0-9_.\-]+\.[0-9a-f]{64}\b"), "a bootstrap token"),
    (re.compile(rb"\A\s*[A-Za-z0-9+/=_\-]{32,}\s*\Z"), "a lone random token (a secret?)"),
)


@dataclass(frozen=True)
class Bundle:
    digest: str
    root: Path
    files: tuple[str, ...]
    requirements: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # "path: why" for each secret left out


def _walk(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            out.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(out)


def secret_reason(rel: str, data: bytes) -> str | None:
    """Why a file must not leave the deployer's machine (None: it may)."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in SECRET_NAMES:
        if fnmatch.fnmatch(name, pattern):
            return f"its name matches {pattern!r}"
    for regex, what in SECRET_CONTENT:
        if regex.search(data):
            return f"it holds {what}"
    return None


def _ignore_rules(root: Path) -> list[tuple[bool, bool, str]]:
    """``.zflowignore`` as (negated, directory-only, pattern) in file order."""
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        line = line[1:] if neg else line
        rules.append((neg, line.endswith("/"), line.strip("/")))
    return rules


def _ignored(rules: list[tuple[bool, bool, str]], rel: str, is_dir: bool) -> bool:
    """gitignore-style: the last matching rule wins; a pattern with '/' is anchored at the root."""
    out = False
    for neg, dir_only, pattern in rules:
        if dir_only and not is_dir:
            continue
        target = rel if "/" in pattern else rel.rsplit("/", 1)[-1]
        if fnmatch.fnmatch(target, pattern):
            out = not neg
    return out


def select_files(root: Path) -> tuple[list[str], list[str]]:
    """The files of an operator directory that ship, and the secrets left out ("path: why")."""
    rules = _ignore_rules(root)
    keep, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if base == "." else base + "/"
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not _ignored(rules, prefix + d, True))
        for name in sorted(filenames):
            rel = prefix + name
            if name.endswith((".pyc", ".pyo")) or name == IGNORE_FILE or _ignored(rules, rel, False):
                continue
            try:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    head = fh.read(MAX_BUNDLE_BYTES + 1)
            except OSError:
                continue  # unreadable (a socket, a dangling link): not part of the code
            why = secret_reason(rel, head)
            if why:
                skipped.append(f"{rel}: {why}")
            else:
                keep.append(rel)
    return sorted(keep), skipped


def digest_of(files: dict[str, bytes], requirements: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel]
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    h.update(b"requirements\0" + "\n".join(requirements).encode())
    return h.hexdigest()


def _read(root: Path, rels: list[str]) -> dict[str, bytes]:
    files, total = {}, 0
    for rel in rels:
        data = (root / rel).read_bytes()
        total += len(data)
        if total > MAX_BUNDLE_BYTES:
            raise UserError(f"{root}: operator directory is larger than {MAX_BUNDLE_BYTES >> 20} MiB; "
                            "move data files out of it or ship them another way")
        files[rel] = data
    return files


def declared_requirements(root: Path, extra: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """``deploy.requirements`` plus the lines of ``requirements.txt`` in the operator directory."""
    reqs = [str(r).strip() for r in extra if str(r).strip()]
    txt = root / "requirements.txt"
    if txt.is_file():
        for line in txt.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                reqs.append(line)
    return tuple(sorted(set(reqs)))


def make_bundle(root: str | Path, requirements: list[str] | tuple[str, ...] = ()) -> tuple[Bundle, bytes]:
    """Hash a directory; returns the bundle and its packed payload."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise UserError(f"{root}: operator directory not found")
    reqs = declared_requirements(root, requirements)
    rels, skipped = select_files(root)
    files = _read(root, rels)
    digest = digest_of(files, reqs)
    payload, _ = codec.encode({"digest": digest, "requirements": list(reqs), "files": files})
    return Bundle(digest, root, tuple(files), reqs, tuple(skipped)), payload


class BundleServer:
    """Serves packed bundles under ``zflow/ctl/bundle/<digest>`` from this process."""

    def __init__(self, session: Any):
        self._payloads: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._queryable = session.declare_queryable(keyexprs.bundle("*"), self._on_query)

    def add(self, digest: str, payload: bytes) -> None:
        with self._lock:
            self._payloads[digest] = payload

    def _on_query(self, query: Any) -> None:
        digest = str(query.key_expr).rsplit("/", 1)[-1]
        with self._lock:
            payload = self._payloads.get(digest)
        if payload is not None:
            query.reply(keyexprs.bundle(digest), payload, encoding=codec.MSGPACK)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._queryable.undeclare()


#: Node configuration keys that name the directory of a node's code (a Ryax action for the
#: workflow step nodes). Such a directory is shipped as the node's bundle and the key is
#: rewritten to the daemon's cached copy, exactly like a Python file target.
CODE_DIR_KEYS = ("action_dir",)


def _code_of(node: Any) -> tuple[Path, dict[str, Any]] | None:
    """The directory to ship for a node and how the daemon points the node at its copy."""
    target = Path(node.run.target) if node.run.kind == "python" and node.run.target else None
    if target is not None and target.is_absolute() and target.is_file():
        return target.parent, {"target": target.name}
    for key in CODE_DIR_KEYS:
        value = node.config.get(key)
        if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_dir():
            return Path(value), {"config": key}
    return None


def ship_graph(graph: Any, log: Any = None) -> tuple[Any, dict[str, bytes]]:
    """Bundle every Python node given as a file, and every node whose config names its code
    directory (:data:`CODE_DIR_KEYS`); returns the rewritten graph and payloads.

    Each shipped node gets ``deploy.bundle = {digest, target | config, requirements}``; the
    daemon swaps ``run.target`` (or that config key) for the path inside its cached copy.
    """
    payloads: dict[str, bytes] = {}
    cache: dict[tuple[Path, tuple[str, ...]], Bundle] = {}
    nodes = {}
    for nid, node in graph.nodes.items():
        code = _code_of(node)
        if code is None:
            nodes[nid] = node
            continue
        root, where = code
        reqs = tuple(node.deploy.get("requirements") or ())
        key = (root, reqs)
        if key not in cache:
            bundle, payload = make_bundle(root, reqs)
            if bundle.skipped and log is not None:
                log(f"{root}: not shipped (secrets never leave this machine): " + "; ".join(bundle.skipped))
            cache[key] = bundle
            payloads[bundle.digest] = payload
        b = cache[key]
        deploy = {**node.deploy, "bundle": {"digest": b.digest, **where, "requirements": list(b.requirements)}}
        nodes[nid] = replace(node, deploy=deploy)
    return replace(graph, nodes=nodes), payloads


def fetch_bundle(session: Any, digest: str, timeout: float = 30.0) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """A bundle's files and requirements from whoever serves it, verified against its digest."""
    data = None
    for reply in session.get(keyexprs.bundle(digest), timeout=timeout):
        if reply.ok is not None:
            data = codec.decode(reply.ok.payload.to_bytes(), str(reply.ok.encoding))
            break
    if data is None:
        raise RuntimeFailure(f"bundle {digest[:12]} is not served by anyone (deployer gone?)")
    files = {k: bytes(v) for k, v in data["files"].items()}
    reqs = tuple(data.get("requirements") or ())
    actual = digest_of(files, reqs)
    if actual != digest:
        raise RuntimeFailure(f"bundle {digest[:12]} failed verification (content hashes to {actual[:12]})")
    return files, reqs


def write_bundle_files(files: dict[str, bytes], target: Path, digest: str) -> None:
    """Write a verified bundle's files under ``target``, refusing any path that leaves it."""
    root = str(target.resolve()) + os.sep
    for rel, blob in files.items():
        dest = (target / rel).resolve()
        if not str(dest).startswith(root):
            raise RuntimeFailure(f"bundle {digest[:12]} has a path outside itself: {rel!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
    target.mkdir(parents=True, exist_ok=True)


class BundleCache:
    """A daemon's bundle store: ``<data>/bundles/<digest>/{files,env}``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def files_dir(self, digest: str) -> Path:
        return self.root / digest / "files"

    def has(self, digest: str) -> bool:
        return (self.root / digest / "ok").exists()

    def payload(self, digest: str) -> bytes | None:
        """Re-pack a cached bundle so this daemon can serve it to others."""
        if not self.has(digest):
            return None
        reqs = tuple((self.root / digest / "requirements").read_text().splitlines())
        files_dir = self.files_dir(digest)
        files = _read(files_dir, _walk(files_dir))
        payload, _ = codec.encode({"digest": digest, "requirements": list(reqs), "files": files})
        return payload

    def ensure(self, session: Any, digest: str, timeout: float = 30.0) -> Path:
        """The bundle's files directory, fetching, verifying and installing it if needed."""
        with self._lock:
            if self.has(digest):
                return self.files_dir(digest)
            files, reqs = fetch_bundle(session, digest, timeout)
            tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=self.root))
            try:
                write_bundle_files(files, tmp / "files", digest)
                (tmp / "requirements").write_text("\n".join(reqs))
                if reqs:
                    install_requirements(tmp / "env", reqs, tmp / "files")
                final = self.root / digest
                if final.exists():
                    shutil.rmtree(final)
                tmp.rename(final)
                if reqs:  # the venv's scripts embed their path: rebuild the few that matter
                    _fix_venv(final / "env", tmp, final)
                (final / "ok").write_text("ok")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return self.files_dir(digest)

    def python_for(self, digest: str) -> str | None:
        """The interpreter of a bundle's venv, None when it declared no requirements."""
        py = self.root / digest / "env" / "bin" / "python"
        return str(py) if py.exists() else None

    def site_packages(self, digest: str) -> str | None:
        env = self.root / digest / "env"
        found = sorted(env.glob("lib/python*/site-packages")) if env.exists() else []
        return str(found[0]) if found else None


def install_requirements(env: Path, reqs: tuple[str, ...], files_dir: Path) -> None:
    """A venv that sees the system site-packages, with ``reqs`` installed into it."""
    run = [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env)]
    _check(subprocess.run(run, capture_output=True, text=True), "creating the bundle venv")
    resolved = [str((files_dir / r).resolve()) if r.startswith(("./", "../")) or (files_dir / r).is_file() else r
                for r in reqs]
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
           "--no-input", "--disable-pip-version-check", "-q", *resolved]
    _check(subprocess.run(pip, capture_output=True, text=True, cwd=files_dir), "installing requirements "
           + ", ".join(reqs))


def _fix_venv(env: Path, old: Path, new: Path) -> None:
    cfg = env / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_text(cfg.read_text().replace(str(old), str(new)))


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeFailure(f"{what} failed: " + " | ".join(tail))
