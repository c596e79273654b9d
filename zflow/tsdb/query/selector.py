"""Queries and their selector form.

A query is a filter in disjunctive normal form (OR of ANDs of predicates), projected
columns, an optional time range and a limit. The Zenoh selector form is
``filter=temperature>30;moteid=7|humidity<=20&cols=time,humidity&time=a..b&limit=N&format=json``:
``;`` is AND, ``|`` is OR (AND binds tighter), ``col=a..b`` is an inclusive range, operators
are ``= == != < <= > >=``. Zenoh itself separates parameters with ``;``, so ``cols=``,
``time=``, ``limit=`` and ``format=`` are also recognised between ``;``-separated filter parts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from zflow.errors import Problem, UserError, did_you_mean
from zflow.tsdb.schema import Column, Schema

OPS = ("<=", ">=", "!=", "==", "=", "<", ">")
PARAMS = ("filter", "cols", "time", "limit", "format", "partial")
_PRED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Pred:
    column: str
    op: str  # one of = != < <= > >=
    value: float


@dataclass
class Query:
    where: list[list[Pred]] = field(default_factory=list)  # OR of ANDs; empty = every row
    cols: list[str] | None = None  # None = every column
    time: tuple[float | None, float | None] | None = None
    limit: int | None = None
    format: str = "msgpack"
    partial: bool = False  # answer without lost objects (marked in the report) instead of failing


def _bad(message: str, hint: str | None = None) -> UserError:
    return UserError(Problem(message, path=("selector",), hint=hint))


def parse_value(text: str, col: Column, where: str) -> float:
    t = text.strip()
    if col.codes is not None and t in col.codes:
        return float(col.codes[t])
    expected = "a number" + (f" or one of {sorted(col.codes)}" if col.codes else "")
    try:
        return float(int(t)) if re.fullmatch(r"[+-]?\d+", t) else parse_time(t)
    except (ValueError, OverflowError) as exc:
        why = f" ({exc})" if "not a number" in str(exc) else ""
        raise _bad(f"bad value {_cut(text)} for column '{col.name}' in {_cut(where)}: expected {expected}{why}") from None


def _cut(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_time(text: str) -> float:
    """Epoch seconds from a number or an ISO date/time (UTC unless it carries an offset);
    ``nan`` is refused (it compares false with everything), infinities are fine."""
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        v = None
    if v is not None:
        if math.isnan(v):
            raise ValueError("nan is not a number: it compares false with every value")
        return v
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_pred(text: str, schema: Schema) -> list[Pred]:
    m = _PRED.match(text)
    if not m:
        head = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", text)
        if head and head[1] in schema.names:
            raise _bad(f"bad operator in {text!r}: expected one of {', '.join(o for o in OPS if o != '==')}")
        raise _bad(f"bad predicate {text!r}: expected <column><op><value>, e.g. temperature>30")
    name, op, value = m[1], m[2], m[3]
    if name not in schema.names:
        raise _bad(f"unknown column '{name}' in {text!r}", did_you_mean(name, schema.names))
    col = schema.column(name)
    if value == "":
        raise _bad(f"missing value in {text!r}")
    if value[0] in "<>=!":
        raise _bad(f"bad operator '{op}{value[0]}' in {text!r}: expected one of "
                   f"{', '.join(o for o in OPS if o != '==')}")
    op = "=" if op == "==" else op
    if ".." in value:
        if op != "=":
            raise _bad(f"a range needs '=', as in {name}=a..b (got {text!r})")
        lo, hi = value.split("..", 1)
        out = []
        if lo.strip():
            out.append(Pred(name, ">=", parse_value(lo, col, text)))
        if hi.strip():
            out.append(Pred(name, "<=", parse_value(hi, col, text)))
        if not out:
            raise _bad(f"empty range in {text!r}")
        return out
    return [Pred(name, op, parse_value(value, col, text))]


def parse_filter(text: str, schema: Schema) -> list[list[Pred]]:
    """``a>1;b=2|c<3`` -> [[a>1, b=2], [c<3]]."""
    out = []
    for alt in text.split("|"):
        conj: list[Pred] = []
        for part in alt.split(";"):
            if part.strip():
                conj += parse_pred(part, schema)
        if not conj:
            raise _bad(f"empty alternative in filter {text!r}")
        out.append(conj)
    return out


def parse_selector(params: str, schema: Schema) -> Query:
    """Parse selector parameters (the part after '?')."""
    q = Query()
    values: dict[str, str] = {}
    filter_parts: list[str] = []
    for seg in unquote(params).split("&"):
        if not seg.strip():
            continue
        key, sep, value = seg.partition("=")
        key = key.strip()
        if not sep or key not in PARAMS:
            raise _bad(f"unknown selector parameter '{key}'", did_you_mean(key, PARAMS))
        if key == "filter":
            # Zenoh separates parameters with ';': pick out known parameters between filter parts
            for part in value.split(";"):
                k2, s2, v2 = part.partition("=")
                if s2 and k2.strip() in PARAMS and k2.strip() != "filter" and k2.strip() not in schema.names:
                    values[k2.strip()] = v2
                else:
                    filter_parts.append(part)
        else:
            values[key] = value
    if filter_parts:
        q.where = parse_filter(";".join(filter_parts), schema)
    if "cols" in values:
        cols = [c.strip() for c in values["cols"].split(",") if c.strip()]
        for c in cols:
            if c not in schema.names:
                raise _bad(f"unknown column '{c}' in cols", did_you_mean(c, schema.names))
        q.cols = cols or None
    if "time" in values:
        q.time = parse_time_range(values["time"])
        if schema.time_column is None:
            raise _bad("time= needs a dataset with a time_column")
    if "limit" in values:
        try:
            q.limit = int(values["limit"])
            if q.limit < 0:
                raise ValueError
        except ValueError:
            raise _bad(f"bad limit {values['limit']!r}: expected a non-negative integer") from None
    if "partial" in values:
        flag = values["partial"].strip().lower()
        if flag not in ("1", "0", "true", "false", "yes", "no"):
            raise _bad(f"bad partial {values['partial']!r}: expected 1 or 0")
        q.partial = flag in ("1", "true", "yes")
    if "format" in values:
        fmt = values["format"].strip()
        if fmt not in ("msgpack", "json"):
            raise _bad(f"bad format {fmt!r}: expected msgpack or json", did_you_mean(fmt, ["msgpack", "json"]))
        q.format = fmt
    return q


def parse_time_range(text: str) -> tuple[float | None, float | None]:
    if ".." not in text:
        raise _bad(f"bad time range {text!r}: expected a..b (either side may be empty)")
    lo, hi = text.split("..", 1)
    if not lo.strip() and not hi.strip():
        raise _bad(f"empty time range {text!r}: give a start, an end or both (a.., ..b, a..b)")
    try:
        return (parse_time(lo) if lo.strip() else None, parse_time(hi) if hi.strip() else None)
    except (ValueError, OverflowError) as exc:
        why = f" ({exc})" if "not a number" in str(exc) else ""
        raise _bad(f"bad time range {_cut(text)}: expected epoch seconds or ISO dates{why}") from None


def check_query(q: Query, schema: Schema) -> None:
    """A query built in code gets the checks a parsed selector got (no traceback later)."""
    if q.limit is not None and (isinstance(q.limit, bool) or not isinstance(q.limit, int) or q.limit < 0):
        raise _bad(f"bad limit {q.limit!r}: expected a non-negative integer")
    for v in q.time or ():
        if v is not None and (not isinstance(v, (int, float)) or math.isnan(v)):
            raise _bad(f"bad time bound {v!r}: expected epoch seconds (a number, not nan)")
    if q.time is not None and all(v is None for v in q.time):
        raise _bad("empty time range: give a start, an end or both")
    if q.time is not None and schema.time_column is None:
        raise _bad("a time range needs a dataset with a time_column")
    for conj in q.where:
        for p in conj:
            if not isinstance(p.value, (int, float)) or math.isnan(p.value):
                raise _bad(f"bad value {p.value!r} for column '{p.column}': expected a number, not nan")
            if p.column not in schema.names:
                raise _bad(f"unknown column '{p.column}'", did_you_mean(p.column, schema.names))
            if p.op not in ("=", "!=", "<", "<=", ">", ">="):
                raise _bad(f"bad operator '{p.op}'")
    for c in q.cols or []:
        if c not in schema.names:
            raise _bad(f"unknown column '{c}' in cols", did_you_mean(c, schema.names))
