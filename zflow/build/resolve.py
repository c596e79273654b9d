"""Resolution: an action directory becomes a build plan, or a refusal that names the entry.

What is decided here and nowhere else: which action types can be packaged (python3), which
Debian suite carries the Python version asked for, how Nix attribute names in
``spec.dependencies`` map to PyPI and Debian names, which files are the action, and which
pins an existing ``ryax_lock.json`` contributes. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from zflow.documents import load_document
from zflow.errors import Problem, UserError, did_you_mean
from zflow.workflows.action import Action, load_action

# Python version -> Debian suite whose python3.X is that version.
SUITES = {"3.11": "bookworm", "3.13": "trixie"}
DEFAULT_PYTHON = "3.11"


@dataclass(frozen=True)
class Arch:
    """One architecture under its three names (Debian/OCI, wheel tags, qemu)."""

    name: str  # Debian and OCI: amd64, arm64
    machine: str  # wheel tags and platform.machine(): x86_64, aarch64

    def manylinux_tags(self) -> list[str]:
        """Every manylinux tag of this architecture: with one tag pip silently picks wrong wheels."""
        glibc = ["2_17", "2_24", "2_26", "2_27", "2_28", "2_31", "2_34", "2_35", "2_36"]
        return [f"manylinux2014_{self.machine}", *(f"manylinux_{v}_{self.machine}" for v in glibc)]


ARCHES = {"amd64": Arch("amd64", "x86_64"), "arm64": Arch("arm64", "aarch64")}
DEFAULT_PLATFORMS = ("amd64", "arm64")

# Nix python3Packages attribute -> PyPI name where they differ (the rest keep their name).
PYPI_RENAMES = {
    "scikitlearn": "scikit-learn", "opencv4": "opencv-python-headless", "opencv3": "opencv-python-headless",
    "pytorch": "torch", "torchWithoutCuda": "torch", "dateutil": "python-dateutil",
    "psycopg2": "psycopg2-binary", "pyjwt": "PyJWT", "tensorflow-bin": "tensorflow",
    "paho-mqtt": "paho-mqtt", "influxdb-client": "influxdb-client", "pymongo": "pymongo",
}
# Nix attribute (not a Python package) -> Debian package name.
DEBIAN_PACKAGES = {
    "ffmpeg": "ffmpeg", "ffmpeg-headless": "ffmpeg", "imagemagick": "imagemagick", "curl": "curl",
    "git": "git", "openssl": "openssl", "sqlite": "sqlite3", "zlib": "zlib1g", "libgomp": "libgomp1",
    "gdal": "gdal-bin", "graphviz": "graphviz", "poppler_utils": "poppler-utils", "tesseract": "tesseract-ocr",
    "cacert": "ca-certificates", "tzdata": "tzdata", "busybox": "busybox-static",
}
# Nix attributes that are the interpreter itself: already in the base.
INTERPRETER = re.compile(r"^python3\d*(Full|Minimal)?$")
PY_ATTR = re.compile(r"^python3\d*Packages\.([A-Za-z0-9_.\-]+)$")
# What numpy-class wheels need from the system besides the interpreter.
BASE_LIBRARIES = ("libstdc++6", "libgcc-s1", "zlib1g")

# Files that belong to the build, not to the action.
_SKIP_NAMES = {"__pycache__", ".git", "zflow_lock.json", "build"}


@dataclass
class Plan:
    """What to build, decided before any download."""

    action: Action
    python: str
    suite: str
    platforms: list[str]
    requirements: list[str]
    constraints: list[str]
    runtime_requirements: list[str]
    debian_packages: list[str]
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    @property
    def arches(self) -> list[Arch]:
        return [ARCHES[p] for p in self.platforms]

    @property
    def interpreter(self) -> str:
        return f"/usr/bin/python{self.python}"


def runtime_requirements() -> list[str]:
    """What the zflow host needs in the image: the package's own dependencies (one home: pyproject)."""
    try:
        reqs = metadata.requires("zflow") or []
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        reqs = []
    out = sorted(r.replace(" ", "") for r in reqs if "extra" not in r)
    return out or ["eclipse-zenoh>=1.10,<2", "msgpack>=1.0", "numpy>=1.26", "pydantic>=2.7,<3", "pyyaml>=6.0"]


def parse_platforms(text: str | list[str] | None) -> list[str]:
    items = [p for p in (text.split(",") if isinstance(text, str) else (text or DEFAULT_PLATFORMS))]
    out: list[str] = []
    for raw in items:
        p = raw.strip().removeprefix("linux/")
        if p not in ARCHES:
            hint = did_you_mean(p, ARCHES) or f"supported: {', '.join(f'linux/{a}' for a in ARCHES)}"
            raise UserError(Problem(f"unknown platform {raw!r}", hint=hint))
        if p not in out:
            out.append(p)
    return out


def action_files(directory: Path) -> dict[str, str]:
    """The action's files (relative POSIX path -> sha256), without caches, locks and build output."""
    out: dict[str, str] = {}
    problems: list[Problem] = []

    def walk(d: Path) -> None:
        for p in sorted(d.iterdir()):
            top_level_skip = p.name in _SKIP_NAMES and (p.name != "build" or d == directory)
            if top_level_skip or p.name.startswith(".") or p.suffix == ".pyc":
                continue
            rel = p.relative_to(directory).as_posix()
            if p.is_symlink():
                problems.append(Problem("symbolic links cannot be packaged", file=str(p),
                                        hint="copy the file into the action directory"))
            elif p.is_dir():
                walk(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    walk(directory)
    if problems:
        raise UserError(problems)
    return out


def _python_version(action: Action, doc_file: str) -> str:
    opts = action.spec.options
    doc = load_document(doc_file)
    if opts is not None and opts.nixpkgs is not None:
        raise UserError(doc.problem(("spec", "options", "nixpkgs"),
                                    "nixpkgs options: this needs a Nix backend, which this builder is not",
                                    "remove options.nixpkgs; the Python version comes from options.python"))
    version = opts.python.version if opts is not None and opts.python is not None else DEFAULT_PYTHON
    if version not in SUITES:
        supported = ", ".join(f"{v} (Debian {s})" for v, s in SUITES.items())
        raise UserError(doc.problem(("spec", "options", "python", "version"),
                                    f"Python {version} cannot be packaged: supported versions are {supported}"))
    return version


def _dependencies(action: Action, doc_file: str) -> tuple[list[str], list[str]]:
    """``spec.dependencies`` -> (PyPI requirements, Debian packages)."""
    doc = load_document(doc_file)
    pypi: list[str] = []
    debs: list[str] = []
    problems: list[Problem] = []
    for i, dep in enumerate(action.spec.dependencies):
        m = PY_ATTR.match(dep)
        if m:
            name = m.group(1)
            pypi.append(PYPI_RENAMES.get(name, name))
        elif INTERPRETER.match(dep):
            continue
        elif dep in DEBIAN_PACKAGES:
            debs.append(DEBIAN_PACKAGES[dep])
        else:
            near = did_you_mean(dep, [*DEBIAN_PACKAGES, *(f"python3Packages.{n}" for n in PYPI_RENAMES)])
            problems.append(doc.problem(
                ("spec", "dependencies", i),
                f"dependency {dep!r} has no known Debian or PyPI equivalent",
                (near + "; " if near else "") + "Python packages: python3Packages.NAME or a requirements.txt "
                "beside the metadata"))
    if problems:
        raise UserError(problems)
    return pypi, debs


_BAD_REQ = re.compile(r"^(-e\b|--editable|git\+|hg\+|svn\+|https?://|file:|\.{0,2}/)")


def _requirements_txt(path: Path) -> list[str]:
    if not path.is_file():
        return []
    out: list[str] = []
    problems: list[Problem] = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if _BAD_REQ.match(line) or line.startswith("-") or " @ " in line:
            problems.append(Problem(f"requirement {line!r} is not a name from the package index",
                                    file=str(path), line=n,
                                    hint="images are built from binary wheels of the index only: "
                                    "write NAME or NAME==VERSION"))
            continue
        out.append(line)
    if problems:
        raise UserError(problems)
    return out


def _ryax_lock_pins(path: Path, python: str) -> list[str]:
    """``ryax_lock.json``'s locked requirements become constraints (pins) of the resolution."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(Problem(f"not valid JSON: {exc}", file=str(path))) from None
    py = data.get("python") if isinstance(data, dict) else None
    if not isinstance(py, dict):
        raise UserError(Problem("expected an object with a 'python' section "
                                "(pythonVersion, lockedRequirements)", file=str(path)))
    locked_version = str(py.get("pythonVersion", python))
    if ".".join(locked_version.split(".")[:2]) != python:
        raise UserError(Problem(f"python.pythonVersion is {locked_version} but the metadata asks for "
                                f"Python {python}", file=str(path),
                                hint="regenerate ryax_lock.json or align spec.options.python.version"))
    text = py.get("lockedRequirements") or ""
    if not isinstance(text, str):
        raise UserError(Problem("python.lockedRequirements must be pip-freeze text", file=str(path)))
    pins = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")) and "==" in line and " @ " not in line:
            pins.append(line)
    return sorted(pins)


def plan_action(directory: str | Path, platforms: list[str] | None = None) -> Plan:
    """Load an action and decide its build; every refusal is a UserError (exit 2)."""
    action = load_action(directory)
    d = action.directory
    if action.spec.type != "python3":
        reason = ("python3-cuda needs a CUDA base image, which this builder does not make yet"
                  if action.spec.type == "python3-cuda" else "only python3 actions can be packaged")
        raise UserError(load_document(action.file).problem(("spec", "type"),
                                                           f"type {action.spec.type} cannot be packaged: {reason}"))
    for nix in ("overlays.nix", "default.nix", "shell.nix"):
        if (d / nix).exists():
            raise UserError(Problem(f"{nix} needs a Nix backend, which this builder is not", file=str(d / nix),
                                    hint="list dependencies in spec.dependencies or requirements.txt"))
    python = _python_version(action, action.file)
    pypi, debian = _dependencies(action, action.file)
    requirements = sorted({*pypi, *_requirements_txt(d / "requirements.txt")})
    constraints = _ryax_lock_pins(d / "ryax_lock.json", python)
    base = [f"python{python}-minimal", f"libpython{python}-stdlib", "python3-minimal", *BASE_LIBRARIES]
    return Plan(action=action, python=python, suite=SUITES[python], platforms=list(platforms or DEFAULT_PLATFORMS),
                requirements=requirements, constraints=constraints, runtime_requirements=runtime_requirements(),
                debian_packages=sorted({*base, *debian}), files=action_files(d))
