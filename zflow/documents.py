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

from zflow.errors import Path, Problem, UserError, clip, did_you_mean

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
# JSON is YAML 1.2: `1e-05` (how json.dumps writes small floats) is a number, not a string.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


# Aliases may add at most this many values to a document: enough for any real use of anchors,
# far below what a "billion laughs" document asks for (nine levels of nine aliases: 387 million).
ALIAS_BUDGET = 100_000
# Real documents nest a few levels; the bound keeps every reader's recursion far from Python's.
MAX_DEPTH = 100
_MERGE = "tag:yaml.org,2002:merge"
_BAD_KEY = object()
# libyaml composes recursively in C: thousands of levels crash the process, so longer texts (the
# only ones that can be that deep) have their depth measured from the event stream first.
_SCAN_FROM = 10_000


def _check_depth(text: str, file: str | None) -> None:
    loader = _Loader(text)
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UserError(_too_deep(file, event.start_mark.line + 1))
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _too_deep(file: str | None, line: int | None, path: Path = ()) -> Problem:
    return Problem(f"nested more than {MAX_DEPTH} levels deep; expected at most {MAX_DEPTH}",
                   file=file, line=line, path=path[:3])


def _expansion(root: yaml.Node, file: str | None) -> None:
    """Refuse a document whose aliases expand past :data:`ALIAS_BUDGET` values, before building
    anything: sizes are counted once per distinct node, so a bomb costs microseconds, not memory."""
    sizes: dict[int, int] = {}
    distinct = 0
    open_nodes: set[int] = set()

    def size(node: yaml.Node, path: Path) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            return sizes[key]
        if len(path) > MAX_DEPTH:
            raise UserError(_too_deep(file, node.start_mark.line + 1, path))
        if key in open_nodes:
            raise UserError(Problem("an alias refers to the value that contains it (a recursive anchor)",
                                    file=file, line=node.start_mark.line + 1, path=path,
                                    hint="expected a value that does not contain itself"))
        distinct += 1
        total = 1
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            open_nodes.add(key)
            pairs = node.value if isinstance(node, yaml.MappingNode) else enumerate(node.value)
            for k, v in pairs:
                label = k.value if isinstance(k, yaml.ScalarNode) else k
                total += size(v, (*path, label))
            open_nodes.discard(key)
        sizes[key] = total
        if total - distinct > ALIAS_BUDGET:
            raise UserError(Problem(
                f"aliases expand this value to {total:,} values; expected at most {ALIAS_BUDGET:,} "
                "values added by aliases", file=file, line=node.start_mark.line + 1, path=path,
                hint="aliases that multiply each other, a 'billion laughs' document, are refused"))
        return total

    size(root, ())


class _Builder:
    """Python data from a composed YAML node tree, with the line of every value and every
    duplicate key reported (with both lines) instead of the last one silently winning."""

    def __init__(self, loader: _Loader, file: str | None):
        self.loader, self.file = loader, file
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
        lines[path] = node.start_mark.line + 1
        if len(path) > MAX_DEPTH:
            raise UserError(_too_deep(self.file, node.start_mark.line + 1, path))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, lines)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i), lines) for i, v in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _key(self, node: yaml.Node, path: Path) -> Any:
        key = self.loader.construct_object(node, deep=True)
        if type(key) is str:
            return key
        if isinstance(key, list):
            key = tuple(key)
        try:
            hash(key)
        except TypeError:
            self.problems.append(Problem(f"a mapping key must be a scalar, found a {type(key).__name__}",
                                         file=self.file, line=node.start_mark.line + 1, path=path))
            return _BAD_KEY
        return key

    def _mapping(self, node: yaml.MappingNode, path: Path, lines: dict[Path, int]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key is _BAD_KEY:
                continue
            line = key_node.start_mark.line + 1
            if key in out:
                first = lines[(*path, key)]
                self.problems.append(Problem(
                    f"duplicate key {clip(key)}: set at line {first} and again at line {line}; "
                    "expected each key once",
                    file=self.file, line=line, path=(*path, key),
                    hint="YAML would silently keep only the last value; remove one of them"))
                continue
            out[key] = self.build(value_node, (*path, key), lines)
            lines[(*path, key)] = line
        for merged in self._merged(merges, path):
            # `<<: *base` fills the keys this mapping does not set itself; the first merge wins
            sub: dict[Path, int] = {}
            values = self._mapping(merged, path, sub)
            for key, value in values.items():
                if key not in out:
                    out[key] = value
                    lines.update((p, n) for p, n in sub.items() if p[: len(path) + 1] == (*path, key))
        return out

    def _merged(self, values: list[yaml.Node], path: Path) -> list[yaml.MappingNode]:
        out: list[yaml.MappingNode] = []
        for value in values:
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for item in items:
                if isinstance(item, yaml.MappingNode):
                    out.append(item)
                else:
                    self.problems.append(Problem(
                        f"'<<' merges mappings; expected a mapping or a list of mappings, found {item.id}",
                        file=self.file, line=item.start_mark.line + 1, path=(*path, "<<")))
        return out


def parse_text(text: str, file: str | None = None) -> Document:
    """Parse YAML (JSON is YAML) text, recording the line of every value.

    Duplicate keys are errors naming both lines; aliases are bounded (:data:`ALIAS_BUDGET`).
    """
    loader = _Loader(text)
    try:
        if len(text) >= _SCAN_FROM:
            _check_depth(text, file)
        root = loader.get_single_node()
        builder = _Builder(loader, file)
        data = None
        if root is not None:
            if "*" in text:  # only an alias (`*name`) can expand a document
                _expansion(root, file)
            data = builder.build(root, (), builder.lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise UserError(Problem(f"not valid YAML: {exc.problem or exc}", file=file, line=line)) from None
    except yaml.YAMLError as exc:
        raise UserError(Problem(f"not valid YAML: {exc}", file=file)) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise UserError(builder.problems)
    return Document(data=data, file=file, lines=builder.lines)


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
