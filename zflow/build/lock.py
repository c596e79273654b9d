"""Reading, writing and comparing ``zflow_lock.json``.

A lock is reused when the inputs that drive resolution are unchanged (``--lock auto``), or
required to match every input exactly (``--lock frozen``); a difference is named field by
field, and file by file for the action's files.
"""

from __future__ import annotations

import json
from pathlib import Path

from zflow.build.models import LOCK_FILE, Lock, LockInputs
from zflow.documents import load_document, validate
from zflow.errors import Problem, UserError

# Inputs that decide which debs and wheels are used (action files and the epoch only change layers).
RESOLUTION_FIELDS = ("python", "suite", "mirror", "index_url", "platforms", "requirements", "constraints",
                     "runtime_requirements", "debian_packages")


def lock_path(action_dir: Path) -> Path:
    return action_dir / LOCK_FILE


def read_lock(action_dir: Path) -> Lock | None:
    path = lock_path(action_dir)
    if not path.is_file():
        return None
    return validate(Lock, load_document(path))


def write_lock(action_dir: Path, lock: Lock) -> Path:
    path = lock_path(action_dir)
    text = json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def changed_inputs(old: LockInputs, new: LockInputs, fields: tuple[str, ...] | None = None) -> list[str]:
    """Human descriptions of what differs between two sets of inputs."""
    out: list[str] = []
    for name in fields or tuple(LockInputs.model_fields):
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if name == "files":
            for f in sorted(set(a) | set(b)):
                if f not in a:
                    out.append(f"action file {f} was added")
                elif f not in b:
                    out.append(f"action file {f} was removed")
                elif a[f] != b[f]:
                    out.append(f"action file {f} changed")
        elif name == "zflow_sha256":
            out.append("the zflow runtime (its source tree) changed")
        else:
            out.append(f"{name} changed from {a!r} to {b!r}")
    return out


def frozen_problems(action_dir: Path, old: LockInputs, new: LockInputs) -> list[Problem]:
    return [Problem(f"--lock frozen: {what} since the lock was written", file=str(lock_path(action_dir)),
                    hint="rebuild without --lock frozen to update the lock")
            for what in changed_inputs(old, new)]


def require_lock(action_dir: Path) -> Lock:
    lock = read_lock(action_dir)
    if lock is None:
        raise UserError(Problem("--lock frozen needs a lock, and there is none", file=str(lock_path(action_dir)),
                                hint="build once without --lock frozen to write it"))
    return lock
