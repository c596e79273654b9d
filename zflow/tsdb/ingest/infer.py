"""Schema inference from a CSV file, for a person in a hurry (``zflow tsdb infer data.csv``).

Per input column: integers get the narrowest integer type holding their range; decimals
become scaled integers (scale = the most decimals seen) when that fits in 64 bits, else f64;
date + time columns (``01/01/1988`` and ``01:00``) merge into one epoch-seconds time column;
text flags with few distinct values become ``u8`` codes; anything else is skipped with a note.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from zflow.errors import Problem, UserError
from zflow.tsdb.ingest.readers import _DATE_RX, _TIME_RX, parse_datetime, read_table
from zflow.tsdb.schema import Coding, Column, ColumnType, Schema

_INT_RX = re.compile(r"^[+-]?\d+$")
_DEC_RX = re.compile(r"^[+-]?(\d+)?\.(\d*)$")
MAX_CODES = 64


def column_name(header: str, taken: set[str]) -> str:
    """``'GHI uncert (%)'`` -> ``ghi_uncert``: drop units in parentheses, snake-case, unique."""
    base = re.sub(r"\(.*?\)", "", header)
    base = re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_").lower() or "col"
    if base[0].isdigit():
        base = "c_" + base
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


_UNSIGNED: tuple[ColumnType, ...] = ("u8", "u16", "u32", "u64")
_SIGNED: tuple[ColumnType, ...] = ("i8", "i16", "i32", "i64")


def narrowest_int(lo: int, hi: int) -> ColumnType | None:
    for t in _UNSIGNED if lo >= 0 else ():
        if hi < 1 << int(t[1:]):
            return t
    for t in _SIGNED:
        b = int(t[1:]) - 1
        if -(1 << b) <= lo and hi < 1 << b:
            return t
    return None


def _numeric(values: list[str]) -> Column | None:
    """A column spec (name filled later) for numeric text, None when the text is not numeric."""
    vals = [v.strip() for v in values]
    if any(v == "" for v in vals):
        if all(v == "" or _INT_RX.match(v) or _DEC_RX.match(v) for v in vals):
            return Column(name="x", type="f64")  # missing values: NaN in a float column
        return None
    if all(_INT_RX.match(v) for v in vals):
        ints = [int(v) for v in vals]
        t = narrowest_int(min(ints), max(ints))
        return Column(name="x", type=t) if t else Column(name="x", type="f64")
    scale = 0
    for v in vals:
        if _INT_RX.match(v):
            continue
        m = _DEC_RX.match(v)
        if not m:
            try:
                float(v)
            except ValueError:
                return None
            return Column(name="x", type="f64")
        scale = max(scale, len(m[2]))
    if scale > 9:
        return Column(name="x", type="f64")
    scaled = [round(float(v) * 10**scale) for v in vals]
    t = narrowest_int(min(scaled), max(scaled))
    if t is None:
        return Column(name="x", type="f64")
    return Column(name="x", type=t, scale=scale or None)


def infer(path: str | Path, name: str | None = None, k: int = 4, n: int = 6) -> tuple[Schema, list[str]]:
    """Infer a schema from a CSV file; returns the schema and notes for the person."""
    table = read_table(path)
    header, rows = table.header, table.rows
    notes: list[str] = []
    if table.bad:
        b = table.bad[0]
        notes.append(f"left out {len(table.bad)} malformed line(s), e.g. {b.problem().render()}")
    taken: set[str] = set()
    columns: list[Column] = []
    time_col = None
    date_idx = next((i for i, h in enumerate(header) if rows and _DATE_RX.match(rows[0][i].strip())), None)
    time_idx = next((i for i, h in enumerate(header) if rows and _TIME_RX.match(rows[0][i].strip())), None)
    used = set()
    if date_idx is not None:
        src: str | list[str] = header[date_idx]
        if time_idx is not None:
            src = [header[date_idx], header[time_idx]]
            used.add(time_idx)
        used.add(date_idx)
        try:
            secs = parse_datetime([r[date_idx] for r in rows],
                                  [r[time_idx] for r in rows] if time_idx is not None else None)
        except ValueError as exc:
            raise UserError(Problem(f"column '{header[date_idx]}': {exc}", file=str(path))) from None
        t = narrowest_int(int(secs.min()), int(secs.max()))
        tname = column_name("time", taken)
        columns.append(Column(name=tname, type=t if t is not None and t not in ("u32", "i32", "u64") else "i64", source=src))
        time_col = tname
        notes.append(f"time column '{tname}' combines {src if isinstance(src, str) else ' + '.join(src)} "
                     "into epoch seconds (UTC)")
    for i, h in enumerate(header):
        if i in used:
            continue
        vals = [r[i] for r in rows]
        spec = _numeric(vals)
        cname = column_name(h, taken)
        if spec is not None:
            columns.append(spec.model_copy(update={"name": cname, "source": h if h != cname else None}))
            continue
        distinct = sorted({v.strip() for v in vals})
        if len(distinct) <= MAX_CODES:
            codes = {v: j for j, v in enumerate(distinct)}
            columns.append(Column(name=cname, type="u8", codes=codes, source=h if h != cname else None))
            notes.append(f"text column '{h}' stored as u8 codes {codes}")
        else:
            taken.discard(cname)
            notes.append(f"skipped text column '{h}' ({len(distinct)} distinct values)")
    ds = name or column_name(Path(path).stem, set())
    if not columns:
        raise UserError(Problem("no column could be inferred (no numbers, dates or short text flags)", file=str(path)))
    try:
        schema = Schema(name=ds, columns=columns, time_column=time_col, coding=Coding(k=k, n=n))
    except ValidationError as exc:
        raise UserError([Problem(f"{'.'.join(map(str, e['loc'])) or 'schema'}: {e['msg']}",
                                 hint="-k/-n: 1 <= k <= n <= 255; --name: letters, digits, '_', '.', '-'")
                         for e in exc.errors()]) from None
    return schema, notes


