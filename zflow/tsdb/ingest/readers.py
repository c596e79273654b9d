"""Reading rows from CSV / JSONL files into stored columns for a schema, checked value by value.

CSV files may carry preamble lines before the header (TMY3 puts a station line first): data
lines share one field count (the most common one), and the header is the first line with that
count. A schema column takes its values from the input column ``source`` (default: its own
name); a two-element source ``[date_column, time_column]`` is combined into epoch seconds
(UTC), and ``codes`` maps text flags to integers.

Nothing is dropped or changed silently: a line with the wrong number of fields, a value that
is not a number, a value with more decimals than the column's ``scale`` or outside its integer
type is a :class:`BadRow` (file, line, column, what was expected, what was found). The caller
either refuses the file (every bad row listed) or, asked to, skips those rows and counts them.
Integers and scaled decimals are converted exactly (never through a float that could round).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from zflow.errors import Problem, UserError, did_you_mean
from zflow.tsdb.schema import Column, Schema

_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d")
_TIME_RX = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?$")
_DATE_RX = re.compile(r"^\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}$")
_NUMBER_RX = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# text up to this long holds at most 14 significant digits: its float is exact enough that
# "more decimals than the scale" shows as a fractional part far above rounding noise
_FLOAT_SAFE_CHARS = 15
MAX_LISTED = 20  # bad rows listed in an error (the count says how many more)


@dataclass(frozen=True)
class BadRow:
    """One row that cannot be stored as it is."""

    file: str
    line: int
    column: str | None  # input column name (None: the line itself, e.g. its field count)
    expected: str
    found: str

    def problem(self) -> Problem:
        what = f"column '{self.column}': " if self.column else ""
        return Problem(f"{what}expected {self.expected}, found {self.found}", file=self.file, line=self.line)


@dataclass
class Parsed:
    """A file's rows as stored columns, and the rows left out (only with ``skip_bad``)."""

    columns: dict[str, np.ndarray]
    skipped: list[BadRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def refuse(bad: list[BadRow], hint: str | None = "fix the rows, or pass --skip-bad-rows to leave them out") -> UserError:
    """One located problem per bad row (the first ``MAX_LISTED``, then how many more)."""
    problems = [b.problem() for b in bad[:MAX_LISTED]]
    more = len(bad) - MAX_LISTED
    if more > 0:
        problems.append(Problem(f"... and {more:,} more bad row(s)", file=bad[0].file))
    problems.append(Problem(f"{len(bad):,} bad row(s); nothing was ingested", file=bad[0].file, hint=hint))
    return UserError(problems)


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---- tables -----------------------------------------------------------------------------------
@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    lines: list[int]  # line number of each row
    header_line: int
    bad: list[BadRow]


def read_table(path: str | Path) -> Table:
    """A CSV file's header and rows (with line numbers), skipping preamble lines; lines whose
    field count differs from the data lines' are ``bad``."""
    p, file = Path(path), str(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(Problem(f"cannot read: {exc}", file=file)) from None
    lines: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text))
    start = 1
    try:
        for rec in reader:
            if rec and (len(rec) > 1 or rec[0].strip()):  # blank lines carry no row
                lines.append((start, rec))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(Problem(f"not a readable CSV file: {exc}", file=file, line=reader.line_num)) from None
    if len(lines) < 2:
        raise UserError(Problem("expected a header line and at least one data line", file=file))
    width = Counter(len(rec) for _, rec in lines).most_common(1)[0][0]
    at = next(i for i, (_, rec) in enumerate(lines) if len(rec) == width)
    header = [h.strip() for h in lines[at][1]]
    rows, nums, bad = [], [], []
    last = lines[-1][0]
    for num, rec in lines[at + 1:]:
        if len(rec) == width:
            rows.append(rec)
            nums.append(num)
            continue
        why = ""
        if len(rec) == width + 1 and not rec[-1].strip():
            why = " (a trailing comma?)"
        elif len(rec) < width and num == last and not text.endswith(("\n", "\r")):
            why = " (the file ends in the middle of this line)"
        bad.append(BadRow(file, num, None, f"{width} fields like the header (line {lines[at][0]})",
                          f"{len(rec)} fields{why}"))
    return Table(header, rows, nums, lines[at][0], bad)


# ---- values -----------------------------------------------------------------------------------
def parse_datetime(dates: list[str], times: list[str] | None) -> np.ndarray:
    """Epoch seconds (UTC) from date strings and optional HH:MM[:SS] strings (24:00 allowed);
    raises ValueError naming the first value it cannot read."""
    bad: dict[int, str] = {}
    out = _datetimes(dates, times, bad)
    if bad:
        raise ValueError(next(iter(bad.values())))
    return out


def _date_format(dates: list[str]) -> str | None:
    for d in dates[:100]:
        fmt = next((f for f in _DATE_FORMATS if _try(d.strip(), f)), None)
        if fmt is not None:
            return fmt
    return None


def _datetimes(dates: list[str], times: list[str] | None, bad: dict[int, str]) -> np.ndarray:
    """Epoch seconds per row; rows that do not parse go to ``bad`` (row -> what was found)."""
    fmt = _date_format(dates)
    out = np.zeros(len(dates), dtype=np.int64)
    if fmt is None:
        for i, d in enumerate(dates):
            bad[i] = f"unrecognised date {_shown(d)}"
        return out
    cache: dict[str, int] = {}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for i, d in enumerate(dates):
        base = cache.get(d)
        if base is None:
            try:
                dt = datetime.strptime(d.strip(), fmt).replace(tzinfo=UTC)
            except ValueError:
                bad[i] = f"date {_shown(d)} (not {fmt})"
                continue
            base = cache[d] = int((dt - epoch) / timedelta(seconds=1))
        secs = 0
        if times is not None:
            m = _TIME_RX.match(times[i].strip())
            if not m or int(m[2]) > 59 or int(m[3] or 0) > 59 or int(m[1]) * 60 + int(m[2]) > 24 * 60:
                bad[i] = f"time {_shown(times[i])} (expected HH:MM[:SS], up to 24:00)"
                continue
            secs = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)
        out[i] = base + secs
    return out


def _try(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
        return True
    except ValueError:
        return False


def _expected(col: Column) -> str:
    if col.scale:
        return f"a number with at most {col.scale} decimal(s) ({col.type}, scale {col.scale})"
    if col.dtype.kind in "iu":
        return f"an integer ({col.type})"
    return f"a number ({col.type})"


def _exact(col: Column, text: str) -> int | str:
    """The stored integer of decimal text for an integer column, exactly; or what is wrong."""
    t = text.strip()
    if not t:
        return "an empty field"
    if not _NUMBER_RX.match(t):
        return _shown(text)
    try:
        d = Decimal(t)
    except InvalidOperation:
        return _shown(text)
    scaled = d.scaleb(col.scale or 0)
    if scaled != scaled.to_integral_value():
        return f"{_shown(text)} (more decimals than the scale keeps)" if col.scale else f"{_shown(text)} (not whole)"
    v = int(scaled)
    info = np.iinfo(col.dtype)
    if not info.min <= v <= info.max:
        return f"{_shown(text)} (outside the range of {col.type})"
    return v


def _numbers(col: Column, vals: list[str], bad: dict[int, str]) -> np.ndarray:
    """Stored values of a numeric column; rows that cannot be stored exactly go to ``bad``."""
    dt = col.dtype
    if dt.kind == "f":
        out = np.zeros(len(vals), dtype=dt)
        try:
            f = np.array([v if v.strip() else "nan" for v in vals], dtype=np.float64)
            if dt.itemsize == 8 or not (np.abs(f[np.isfinite(f)]) > np.finfo(np.float32).max).any():
                out[:] = f
                return out
        except ValueError:
            pass
        for i, v in enumerate(vals):
            try:
                x = float(v) if v.strip() else math.nan
            except ValueError:
                bad[i] = _shown(v)
                continue
            if math.isfinite(x) and dt.itemsize == 4 and abs(x) > float(np.finfo(np.float32).max):
                bad[i] = f"{_shown(v)} (outside the range of f32)"
                continue
            out[i] = x
        return out
    # integers and scaled decimals: a float fast path where it is provably exact, else Decimal
    out = np.zeros(len(vals), dtype=dt)
    slow: list[int] = []
    try:
        short = [len(v) <= _FLOAT_SAFE_CHARS for v in vals]
        f = np.array([v if s else "0" for v, s in zip(vals, short, strict=True)], dtype=np.float64)
        slow = [i for i, s in enumerate(short) if not s]
        scaled = f * (10.0 ** (col.scale or 0))
        r = np.rint(scaled)
        info = np.iinfo(dt)
        off = ~np.isfinite(scaled) | (np.abs(scaled - r) > 4 * np.spacing(np.abs(scaled))) \
            | (r < float(info.min)) | (r > float(info.max))
        if off.any():
            slow += np.flatnonzero(off).tolist()
            r[off] = 0
        out[:] = r.astype(dt)
    except ValueError:  # some text is not a number: every row the careful way
        slow = list(range(len(vals)))
    for i in slow:
        got = _exact(col, vals[i])
        if isinstance(got, str):
            bad[i] = got
        else:
            out[i] = got
    return out


def _codes(col: Column, vals: list[str], bad: dict[int, str]) -> np.ndarray:
    assert col.codes is not None
    out = np.zeros(len(vals), dtype=col.dtype)
    for i, v in enumerate(vals):
        code = col.codes.get(v.strip())
        if code is None:
            bad[i] = _shown(v)
        else:
            out[i] = code
    return out


def convert(col: Column, raw: list[list[str]], bad: dict[int, str]) -> np.ndarray:
    """Stored values of one schema column from its source text (one list per source column)."""
    if len(raw) == 2:
        return _datetimes(raw[0], raw[1], bad).astype(col.dtype)
    vals = raw[0]
    if col.codes is not None:
        return _codes(col, vals, bad)
    if col.dtype.kind in "iu" and not col.scale and vals and _DATE_RX.match(vals[0].strip()):
        return _datetimes(vals, None, bad).astype(col.dtype)
    return _numbers(col, vals, bad)


def _sources(col: Column) -> list[str]:
    return col.source if isinstance(col.source, list) else [col.source or col.name]


def _what(col: Column) -> str:
    if isinstance(col.source, list):
        return f"a date and a time ({' + '.join(col.source)})"
    if col.codes is not None:
        return f"one of {sorted(col.codes)}"
    return _expected(col)


def _columns(schema: Schema, header: list[str], rows: list[list[str]], lines: list[int], file: str,
             skip_bad: bool, skipped: list[BadRow]) -> dict[str, np.ndarray]:
    """Stored columns of string rows; every bad value is a BadRow (raised, or its row skipped)."""
    problems = []
    idx: dict[str, list[int]] = {}
    for c in schema.columns:
        missing = [s for s in _sources(c) if s not in header]
        for s in missing:
            problems.append(Problem(f"column '{s}' (for '{c.name}') not in the file", file=file,
                                    hint=did_you_mean(s, header)))
        idx[c.name] = [header.index(s) for s in _sources(c) if s in header]
    if problems:
        raise UserError(problems)
    cols: dict[str, np.ndarray] = {}
    bad_rows: dict[int, BadRow] = {}
    for c in schema.columns:
        bad: dict[int, str] = {}
        cols[c.name] = convert(c, [[r[i] for r in rows] for i in idx[c.name]], bad)
        for i, found in bad.items():
            if i not in bad_rows:  # the first bad value of a row names it
                bad_rows[i] = BadRow(file, lines[i], " + ".join(_sources(c)), _what(c), found)
    found_bad = [bad_rows[i] for i in sorted(bad_rows)]
    if (found_bad or skipped) and not skip_bad:  # every bad row of the file at once
        raise refuse(sorted(skipped + found_bad, key=lambda b: b.line))
    if found_bad:
        skipped += found_bad
        keep = np.ones(len(rows), dtype=bool)
        keep[sorted(bad_rows)] = False
        cols = {k: v[keep] for k, v in cols.items()}
    return cols


def parse_csv(path: str | Path, schema: Schema, skip_bad: bool = False) -> Parsed:
    table = read_table(path)
    skipped = list(table.bad)
    cols = _columns(schema, table.header, table.rows, table.lines, str(path), skip_bad, skipped)
    return Parsed(cols, sorted(skipped, key=lambda b: b.line))


def _text(v: Any) -> str | None:
    """JSON value -> the text a CSV would hold (None: not a scalar a column can take)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, str)):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back as the same float
    return None


def parse_jsonl(path: str | Path, schema: Schema, skip_bad: bool = False) -> Parsed:
    file = str(path)
    rows: list[dict] = []
    lines: list[int] = []
    skipped: list[BadRow] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(Problem(f"cannot read: {exc}", file=file)) from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError
        except ValueError:
            skipped.append(BadRow(file, lineno, None, "a JSON object", _shown(line.strip())))
            continue
        rows.append(row)
        lines.append(lineno)
    cols = rows_to_columns(rows, schema, file, lines, skip_bad, skipped)
    return Parsed(cols, sorted(skipped, key=lambda b: b.line))


def rows_to_columns(rows: list[dict], schema: Schema, file: str | None = None, lines: list[int] | None = None,
                    skip_bad: bool = False, skipped: list[BadRow] | None = None) -> dict[str, np.ndarray]:
    """JSON-like row dicts -> stored columns (checked like CSV text; a row lacking a column is bad)."""
    file = file or "<rows>"
    lines = lines if lines is not None else list(range(1, len(rows) + 1))
    names = [c.name for c in schema.columns]
    keys = {c.name: (_sources(c)[0] if len(_sources(c)) == 1 else c.name) for c in schema.columns}
    header = names
    table: list[list[str]] = []
    pre: dict[int, BadRow] = {}
    for i, r in enumerate(rows):
        out = []
        for c in schema.columns:
            key = keys[c.name] if keys[c.name] in r else c.name
            if key not in r:
                pre.setdefault(i, BadRow(file, lines[i], c.name, "a value", "no such key"
                                         + (f" ({did_you_mean(c.name, r)})" if did_you_mean(c.name, r) else "")))
                out.append("")
                continue
            v = r[key]
            if c.codes is not None and isinstance(v, int) and not isinstance(v, bool):
                v = next((t for t, code in c.codes.items() if code == v), v)
            t = _text(v)
            if t is None:
                pre.setdefault(i, BadRow(file, lines[i], c.name, _what(c), _shown(json.dumps(v))))
                t = ""
            out.append(t)
        table.append(out)
    skipped = skipped if skipped is not None else []
    if pre:  # rows lacking a column: set aside here, refused with the others in _columns
        skipped += pre.values()
        keep = [i for i in range(len(rows)) if i not in pre]
        table, lines = [table[i] for i in keep], [lines[i] for i in keep]
    flat = schema.model_copy(update={"columns": [c.model_copy(update={"source": None}) for c in schema.columns]})
    return _columns(flat, header, table, lines, file, skip_bad, skipped)


def parse_file(path: str | Path, schema: Schema, skip_bad: bool = False) -> Parsed:
    """A CSV or JSONL file as stored columns, every value checked (see the module docstring)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return parse_jsonl(path, schema, skip_bad)
    return parse_csv(path, schema, skip_bad)


def read_csv(path: str | Path, schema: Schema) -> Iterator[dict[str, np.ndarray]]:
    """The logical values of a CSV file (as queries return them), one batch; bad rows raise."""
    from zflow.tsdb.layout.ordkeys import logical_from_stored

    cols = parse_csv(path, schema).columns
    yield {c.name: logical_from_stored(cols[c.name], c) for c in schema.columns}
