"""Checking a Python action's handler without running it: the file must compile, and define the
entry point its kind calls (``def handle(inputs)``, or ``async def run(service, input_values)``
for a trigger). Only the source is read: no import, so no code of the action runs at check time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from zflow.errors import Problem, did_you_mean


@dataclass(frozen=True)
class EntryPoint:
    name: str
    is_async: bool
    params: tuple[str, ...]  # how a person writes it, for messages

    @property
    def signature(self) -> str:
        return f"{'async ' if self.is_async else ''}def {self.name}({', '.join(self.params)})"


HANDLE = EntryPoint("handle", False, ("inputs",))
RUN = EntryPoint("run", True, ("service", "input_values"))


def check_handler(file: Path, trigger: bool) -> list[Problem]:
    """Problems with a Python handler file (located at its lines), [] when it will load and call."""
    where = str(file)
    try:
        source = file.read_bytes()
    except OSError as exc:
        return [Problem(f"cannot read the handler: {exc.strerror}", file=where)]
    try:
        compile(source, where, "exec", dont_inherit=True)  # compile-time errors too ('return' outside ...)
        tree = ast.parse(source, where)
    except SyntaxError as exc:
        found = (exc.text or "").strip()
        return [Problem(f"not valid Python: {exc.msg}" + (f"; found: {found[:120]}" if found else ""),
                        file=where, line=exc.lineno)]
    except (ValueError, UnicodeDecodeError) as exc:  # NUL bytes, bad encoding
        return [Problem(f"not valid Python source: {exc}", file=where)]
    entry = RUN if trigger else HANDLE
    return _entry_problems(tree, entry, where)


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Module-level statements, looking inside ``if``/``try``/``with`` blocks (conditional defs)."""
    out: list[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        stmt = todo.pop(0)
        out.append(stmt)
        if isinstance(stmt, ast.If | ast.With | ast.AsyncWith):
            todo += [*stmt.body, *getattr(stmt, "orelse", [])]
        elif isinstance(stmt, ast.Try):
            todo += [*stmt.body, *stmt.orelse, *stmt.finalbody, *(s for h in stmt.handlers for s in h.body)]
    return out


def _bound_otherwise(stmt: ast.stmt, name: str) -> bool:
    """``handle = make()``, ``from x import handle``, ``class handle``: bound, not checkable statically."""
    if isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return any(isinstance(t, ast.Name) and t.id == name for t in targets)
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    return isinstance(stmt, ast.ClassDef) and stmt.name == name


def _entry_problems(tree: ast.Module, entry: EntryPoint, where: str) -> list[Problem]:
    stmts = _top_level(tree)
    defs = [s for s in stmts if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == entry.name]
    if not defs:
        if any(_bound_otherwise(s, entry.name) for s in stmts):
            return []
        functions = [s.name for s in stmts if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        found = f"found {', '.join(f'{n}()' for n in functions)}" if functions else "found no function"
        return [Problem(f"no {entry.name}() entry point: expected `{entry.signature}` at module level, {found}",
                        file=where, hint=did_you_mean(entry.name, functions))]
    fn = defs[-1]  # the last definition is the one Python keeps
    problems = []
    is_async = isinstance(fn, ast.AsyncFunctionDef)
    if is_async != entry.is_async:
        problems.append(Problem(
            f"{entry.name}() must be {'an async' if entry.is_async else 'a plain (not async)'} function: "
            f"expected `{entry.signature}`, found `{'async ' if is_async else ''}def {entry.name}(...)`",
            file=where, line=fn.lineno))
    arity = _arity_problem(fn.args, len(entry.params))
    if arity:
        problems.append(Problem(f"{entry.name}() {arity}: expected `{entry.signature}`", file=where, line=fn.lineno))
    return problems


def _arity_problem(args: ast.arguments, given: int) -> str | None:
    """Whether a call with ``given`` positional arguments binds (None) or why not."""
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    kw_required = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    if required > given:
        names = ", ".join(a.arg for a in positional)
        return f"has {required} required parameters ({names}) but is called with {given}"
    if len(positional) < given and args.vararg is None:
        return f"has {len(positional)} positional parameters but is called with {given}"
    if kw_required:
        return f"requires keyword-only arguments ({', '.join(kw_required)}) it is never given"
    return None
