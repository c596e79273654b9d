"""Finding actions: a directory path, or a library id (+ version) looked up in action folders.

Search order: folders the workflow lists (``spec.actions_path``), then ``ZFLOW_ACTIONS_PATH``
(os.pathsep-separated), then the built-in library ``operators/ryax``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zflow import settings
from zflow.documents import load_document
from zflow.errors import UserError
from zflow.workflows.action import METADATA_FILE, Action, load_action

BUILTIN = Path(__file__).resolve().parent.parent.parent / "operators" / "ryax"


def search_path(extra: Sequence[str | Path] | None = None) -> list[Path]:
    paths = [Path(p) for p in extra or []]
    paths += settings.actions_path()
    paths.append(BUILTIN)
    return paths


class Library:
    """Actions found under some folders, by id and version (loaded lazily, cached)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._dirs: dict[str, list[Path]] | None = None
        self._loaded: dict[Path, Action] = {}
        self._broken: dict[str, list[tuple[Path, UserError]]] = {}  # by the id its metadata claims

    def _scan(self) -> dict[str, list[Path]]:
        if self._dirs is None:
            self._dirs = {}
            for root in self.paths:
                if not root.is_dir():
                    continue
                for meta in sorted(root.glob(f"*/{METADATA_FILE}")) + sorted(root.glob(f"*/*/{METADATA_FILE}")):
                    try:
                        action = self.load(meta.parent)
                    except UserError as exc:  # not this workflow's error, unless it asks for that id
                        self._broken.setdefault(_claimed_id(meta), []).append((meta.parent, exc))
                        continue
                    self._dirs.setdefault(action.id, []).append(meta.parent)
        return self._dirs

    def load(self, directory: Path) -> Action:
        key = directory.resolve()
        if key not in self._loaded:
            self._loaded[key] = load_action(directory)
        return self._loaded[key]

    def ids(self) -> list[str]:
        return sorted(self._scan())

    def versions(self, action_id: str) -> list[str]:
        return sorted(self.load(d).version for d in self._scan().get(action_id, []))

    def find(self, action_id: str, version: str | None = None) -> Action | None:
        """The action with this id (the given version, or the highest one)."""
        candidates = [self.load(d) for d in self._scan().get(action_id, [])]
        if version is not None:
            candidates = [a for a in candidates if a.version == version]
        if not candidates:
            return None
        return max(candidates, key=lambda a: _version_key(a.version))

    def broken(self, action_id: str) -> list[tuple[Path, UserError]]:
        """Action folders that claim ``action_id`` but did not load, with why."""
        self._scan()
        return self._broken.get(action_id, [])

    def all(self) -> list[Action]:
        return [self.load(d) for ds in self._scan().values() for d in ds]


def _version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in v.replace("-", ".").split("."))


def _claimed_id(meta: Path) -> str:
    try:
        data = load_document(meta).data
    except UserError:
        return ""
    spec = data.get("spec") if isinstance(data, dict) else None
    return str(spec.get("id", "")) if isinstance(spec, dict) else ""
