"""``{{ VAR }}`` substitution in descriptors, with CLI overrides (``--var K=V``).

Substitution runs on the parsed document (every string value and mapping key, except the
``vars`` section itself) before the models see it, and keeps the line map, so a model error
still points at the user's line. A string that is exactly one ``{{ VAR }}`` takes the var's
value with its type (``queue_size: "{{ Q }}"`` with ``Q: 8`` gives the int 8).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from zflow.documents import Document
from zflow.errors import Path, Problem, UserError, clip, did_you_mean

_VAR = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def parse_cli_vars(items: Iterable[str] | None) -> dict[str, Any]:
    """``["K=V", ...]`` -> ``{K: V}``; values that read as JSON scalars (35, 2.5, true) are typed."""
    out: dict[str, Any] = {}
    problems = []
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(f"--var {clip(item)}: expected KEY=VALUE"))
            continue
        out[key] = _scalar(value)
    if problems:
        raise UserError(problems)
    return out


def _not_json(constant: str) -> Any:
    raise ValueError(constant)


def _scalar(text: str) -> Any:
    """JSON numbers and booleans are typed; NaN and Infinity (not JSON) stay text, so a model
    refuses them with its usual message instead of a timer waiting forever."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _text(value: Any) -> str:
    """A var inside a longer string: booleans as YAML/JSON spell them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def merged_vars(declared: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """File defaults, overridden by the caller (CLI or an outer descriptor).

    Override values given as text are read like ``--var`` values (``"8"`` is 8), so every
    caller (``zflow check``, ``zflow run``, the API) types them the same way.
    """
    typed = {k: _scalar(v) if isinstance(v, str) else v for k, v in (overrides or {}).items()}
    return {**(declared or {}), **typed}


def substitute(doc: Document, values: Mapping[str, Any], skip: tuple[str, ...] = ("vars",)) -> tuple[Document, list[Problem]]:
    """A new document with every ``{{ VAR }}`` replaced; unknown or empty vars become problems."""
    problems: list[Problem] = []

    def fill(text: str, old: Path) -> Any:
        if "{{" not in text:
            return text
        whole = _VAR.fullmatch(text.strip())
        if whole:
            return lookup(whole.group(1), old, text)
        return _VAR.sub(lambda m: _text(lookup(m.group(1), old, text)), text)

    def lookup(name: str, old: Path, text: str) -> Any:
        if not _NAME.match(name):
            problems.append(doc.problem(old, f"bad variable reference {{{{ {name} }}}} in {clip(text)}",
                                        "expected {{ NAME }} with letters, digits, '_' or '-'"))
            return ""
        if name not in values:
            hint = did_you_mean(name, values) or (
                f"define it under `vars:` or pass --var {name}=..."
            )
            problems.append(doc.problem(old, f"variable '{name}' is not defined", hint))
            return ""
        value = values[name]
        if value is None:
            problems.append(doc.problem(old, f"variable '{name}' has no value", f"pass --var {name}=..."))
            return ""
        return value

    renamed: list[tuple[Path, Path]] = []  # mapping keys changed by substitution

    def walk(node: Any, path: Path) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                new_key = fill(key, (*path, key)) if isinstance(key, str) else key
                if not isinstance(new_key, str | int | float | bool) and new_key is not None:
                    new_key = str(new_key)
                if new_key != key:
                    renamed.append(((*path, key), (*path, new_key)))
                if not path and key in skip:
                    out[new_key] = value
                    continue
                out[new_key] = walk(value, (*path, key))
            return out
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str):
            return fill(node, path)
        return node

    data = walk(doc.data, ())
    lines = doc.lines if not renamed else _renamed_lines(doc.lines, renamed)
    return Document(data=data, file=doc.file, lines=lines), problems


def _renamed_lines(lines: dict[Path, int], renamed: list[tuple[Path, Path]]) -> dict[Path, int]:
    """The line map after some mapping keys were substituted (paths under them move too).

    Renames are applied deepest-first on the *original* paths, which is what each rename names.
    """
    out = dict(lines)
    for old, new in sorted(renamed, key=lambda r: -len(r[0])):
        n = len(old)
        for path in [p for p in out if p[:n] == old]:
            out[(*new, *path[n:])] = out.pop(path)
    return out


def declared_vars(doc: Document) -> tuple[dict[str, Any], list[Problem]]:
    """The ``vars:`` mapping of a document, checked for shape before substitution uses it."""
    data = doc.data if isinstance(doc.data, dict) else {}
    raw = data.get("vars")
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, []  # the model reports the shape
    problems = [
        doc.problem(("vars", k), f"bad variable name {k!r}", "letters, digits, '_' or '-'")
        for k in raw
        if isinstance(k, str) and not _NAME.match(k)
    ]
    return {str(k): v for k, v in raw.items()}, problems


def unused_overrides(overrides: Mapping[str, Any], files: Iterable[str | None]) -> list[Problem]:
    """``--var`` names that no file of the flow declares or uses: a misspelt override is
    otherwise ignored without a word. ``files`` are the flow's descriptor files."""
    from zflow.documents import load_document

    known: set[str] = set()
    files = {f for f in files if f}
    if not files:
        return []
    for file in files:
        try:
            doc = load_document(str(file))
        except UserError:
            return []  # cannot tell
        known.update(declared_vars(doc)[0])
        known.update(m.group(1) for m in _VAR.finditer(json.dumps(doc.data, default=str)))
    return [
        Problem(f"--var {name if len(name) <= 60 else clip(name, 60)}: the flow neither declares nor uses this variable",
                hint=did_you_mean(name, known) or (f"its variables: {', '.join(sorted(known))}" if known else None))
        for name in overrides if name not in known
    ]


__all__ = ["declared_vars", "merged_vars", "parse_cli_vars", "substitute", "unused_overrides"]
