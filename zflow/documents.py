"""The one loader for every file format: YAML/JSON documents with line numbers, validated by
pydantic models into errors that point at the user's line.

``load_document`` keeps a map from document paths to source lines, and ``validate`` turns
pydantic's ``loc`` paths into :class:`~zflow.errors.Problem`s carrying file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from zflow.errors import Path, Problem, UserError, did_you_mean

M = TypeVar("M", bound=BaseModel)


@dataclass
class Document:
    """Parsed data plus where each value came from."""

    data: Any
    file: str | None = None
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """Line of the deepest known prefix of ``path`` (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path, message: str, hint: str | None = None) -> Problem:
        return Problem(message, file=self.file, line=self.line_of(path), path=path, hint=hint)


# libyaml's parser when PyYAML was built with it (about 6x faster on a 50-node flow); the
# construction below stays in Python either way, so results and line numbers are the same.
_SafeBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):
    """Safe YAML loader; booleans restricted to true/false so 'on'/'no' stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct(node: yaml.Node, path: Path, lines: dict[Path, int], loader: _Loader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list):
                key = tuple(key)
            out[key] = _construct(value_node, (*path, key), lines, loader)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*path, i), lines, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_text(text: str, file: str | None = None) -> Document:
    """Parse YAML (JSON is YAML) text, recording the line of every value."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        lines: dict[Path, int] = {}
        data = _construct(root, (), lines, loader) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise UserError(Problem(f"not valid YAML: {exc.problem or exc}", file=file, line=line)) from None
    except yaml.YAMLError as exc:
        raise UserError(Problem(f"not valid YAML: {exc}", file=file)) from None
    finally:
        loader.dispose()
    return Document(data=data, file=file, lines=lines)


def load_document(path: str | FsPath) -> Document:
    """Read a YAML or JSON file; a missing or unreadable file is a user error."""
    p = FsPath(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(Problem("file not found", file=str(path))) from None
    except IsADirectoryError:
        raise UserError(Problem("is a directory, expected a file", file=str(path))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(Problem(f"cannot read file: {exc}", file=str(path))) from None
    return parse_text(text, file=str(path))


def _expected(err: Any) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    return msg[0].lower() + msg[1:] if msg else msg


def validation_problems(exc: ValidationError, doc: Document, model: type[BaseModel]) -> list[Problem]:
    """Translate pydantic errors into located problems with did-you-mean for unknown fields."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # Drop union/tagged-union tags pydantic inserts into loc (they are not document keys).
        path: list[str | int] = []
        node: Any = doc.data
        for part in loc:
            if isinstance(node, dict) and part in node:
                path.append(part)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                path.append(part)
                node = node[part]
            elif err.get("type") in ("missing", "extra_forbidden") and part == loc[-1]:
                path.append(part)
        hint = None
        if err.get("type") == "extra_forbidden" and path:
            parent: Any = doc.data
            for part in path[:-1]:
                parent = parent[part]
            hint = did_you_mean(str(path[-1]), _field_names_near(model, path[:-1], doc))
            if hint is None and isinstance(parent, dict):
                hint = None
        elif err.get("type") in ("literal_error", "enum") and isinstance(err.get("input"), str):
            allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            hint = did_you_mean(err["input"], allowed)
        problems.append(doc.problem(tuple(path), _expected(err), hint))
    return problems


def _field_names_near(model: type[BaseModel], path: list[str | int], doc: Document) -> list[str]:
    """Field names (and aliases) of the sub-model that sits at ``path``, best effort."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields:
            return []
        target = None
        for name, info in fields.items():
            if part in (name, info.alias):
                target = info.annotation
                break
        if target is None:
            return []
        current = _unwrap_model(target)
    fields = getattr(current, "model_fields", {})
    names: list[str] = []
    for name, info in fields.items():
        names.append(info.alias or name)
    return names


def _unwrap_model(annotation: Any) -> Any:
    """Find a BaseModel inside Optional[...], list[...], dict[..., ...] annotations."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def validate(model: type[M], doc: Document, **context: Any) -> M:
    """Validate a document against a model; every problem at once, each with file and line."""
    try:
        return model.model_validate(doc.data, context={"document": doc, **context})
    except ValidationError as exc:
        raise UserError(validation_problems(exc, doc, model)) from None


def load(model: type[M], path: str | FsPath, **context: Any) -> M:
    """Load and validate a file in one step."""
    return validate(model, load_document(path), **context)


def dump_schema(model: type[BaseModel], path: str | FsPath) -> None:
    """Export a model's JSON Schema (never write schemas by hand)."""
    FsPath(path).parent.mkdir(parents=True, exist_ok=True)
    FsPath(path).write_text(json.dumps(model.model_json_schema(), indent=2) + "\n", encoding="utf-8")
