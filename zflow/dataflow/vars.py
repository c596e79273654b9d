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
from zflow.errors import Path, Problem, UserError, did_you_mean

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
            problems.append(Problem(f"--var {item!r}: expected KEY=VALUE"))
            continue
        out[key] = _scalar(value)
    if problems:
        raise UserError(problems)
    return out


def _scalar(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def merged_vars(declared: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """File defaults, overridden by the caller (CLI or an outer descriptor)."""
    return {**(declared or {}), **(overrides or {})}


def substitute(doc: Document, values: Mapping[str, Any], skip: tuple[str, ...] = ("vars",)) -> tuple[Document, list[Problem]]:
    """A new document with every ``{{ VAR }}`` replaced; unknown or empty vars become problems."""
    problems: list[Problem] = []
    lines: dict[Path, int] = {}

    def fill(text: str, old: Path) -> Any:
        if "{{" not in text:
            return text
        whole = _VAR.fullmatch(text.strip())
        if whole:
            return lookup(whole.group(1), old, text)
        return _VAR.sub(lambda m: str(lookup(m.group(1), old, text)), text)

    def lookup(name: str, old: Path, text: str) -> Any:
        if not _NAME.match(name):
            problems.append(doc.problem(old, f"bad variable reference {{{{ {name} }}}} in {text!r}",
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

    def walk(node: Any, old: Path, new: Path) -> Any:
        if old in doc.lines:
            lines[new] = doc.lines[old]
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                new_key = fill(key, (*old, key)) if isinstance(key, str) else key
                if not isinstance(new_key, str | int | float | bool) and new_key is not None:
                    new_key = str(new_key)
                if len(old) == 0 and key in skip:
                    out[new_key] = value
                    _copy_lines((*old, key), (*new, new_key))
                    continue
                out[new_key] = walk(value, (*old, key), (*new, new_key))
            return out
        if isinstance(node, list):
            return [walk(v, (*old, i), (*new, i)) for i, v in enumerate(node)]
        if isinstance(node, str):
            return fill(node, old)
        return node

    def _copy_lines(old: Path, new: Path) -> None:
        n = len(old)
        for path, line in doc.lines.items():
            if path[:n] == old:
                lines[(*new, *path[n:])] = line

    data = walk(doc.data, (), ())
    return Document(data=data, file=doc.file, lines=lines), problems


def declared_vars(doc: Document) -> tuple[dict[str, Any], list[Problem]]:
    """The ``vars:`` mapping of a document, checked for shape before substitution uses it."""
    data = doc.data if isinstance(doc.data, dict) else {}
    raw = data.get("vars")
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [doc.problem(("vars",), "expected a mapping of NAME: value")]
    problems = [
        doc.problem(("vars", k), f"bad variable name {k!r}", "letters, digits, '_' or '-'")
        for k in raw
        if not isinstance(k, str) or not _NAME.match(k)
    ]
    return {str(k): v for k, v in raw.items()}, problems


__all__ = ["declared_vars", "merged_vars", "parse_cli_vars", "substitute"]
