"""Errors a person sees: where (file, line, path in the document), what was expected, a hint.

Every user-facing failure is a :class:`UserError` carrying one or more :class:`Problem`s, so a
validator can report every mistake at once instead of stopping at the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """Render ``("links", 3, "to", "input")`` as ``links[3].to.input``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# A message quotes what it found, but never a whole 2 MB value: values longer than this are cut.
CLIP = 80
_MESSAGE_MAX = 2000


def clip(value: object, limit: int = CLIP) -> str:
    """``repr`` of a value for a message, cut to ``limit`` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str | bytes):
        length = f"{len(value):,} {'characters' if isinstance(value, str) else 'bytes'}"
    else:
        length = f"{len(text):,} characters as text"
    return f"{text[:limit]}... ({length})"


def cut(text: str, limit: int = _MESSAGE_MAX) -> str:
    """Last guard for messages that quote a long value without :func:`clip`: keep both ends
    (what is wrong is said first, what was expected often last)."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]} ... [{len(text) - head - tail:,} characters cut] ... {text[-tail:]}"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, as a ready-to-print hint."""
    matches = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


@dataclass(frozen=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None
    path: Path = ()
    hint: str | None = None

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        elif self.line:
            where = f"line {self.line}"
        loc = format_path(self.path)
        parts = [p for p in (where, loc) if p]
        text = ": ".join([*parts, self.message]) if parts else self.message
        return cut(f"{text} ({self.hint})" if self.hint else text)


class UserError(Exception):
    """Bad input from a person: reported without a traceback, exit code 2."""

    exit_code = 2

    def __init__(self, problems: Problem | str | Sequence[Problem]):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    def render(self) -> str:
        n = len(self.problems)
        head = f"{n} error{'s' if n != 1 else ''}:" if n > 1 else "error:"
        return "\n".join([head, *("  " + p.render() for p in self.problems)])


class RuntimeFailure(Exception):
    """Something went wrong while running (not the user's input): exit code 1."""

    exit_code = 1
