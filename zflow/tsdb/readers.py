"""Reading rows from CSV / JSONL files into logical numpy columns for a schema.

CSV files may carry preamble lines before the header (TMY3 puts a station line first): the
header is the first line whose field count matches the data lines. A schema column takes its
values from the input column ``source`` (default: its own name); a two-element source
``[date_column, time_column]`` is combined into epoch seconds (UTC), and ``codes`` maps text
flags to integers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from zflow.errors import Problem, UserError, did_you_mean
from zflow.tsdb.schema import Column, Schema

_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d")
_TIME_RX = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?$")


def read_table(path: str | Path) -> tuple[list[str], list[list[str]], int]:
    """(header, rows, header_line_number) of a CSV file, skipping preamble lines."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(Problem(f"cannot read: {exc}", file=str(path))) from None
    lines = list(csv.reader(io.StringIO(text)))
    lines = [ln for ln in lines if ln]
    if len(lines) < 2:
        raise UserError(Problem("expected a header line and at least one data line", file=str(path)))
    width = len(lines[-1])
    for i, ln in enumerate(lines[: min(len(lines), 20)]):
        if len(ln) == width:
            return [h.strip() for h in ln], lines[i + 1 :], i + 1
    raise UserError(Problem("no header line with as many fields as the data lines", file=str(path)))


def parse_datetime(dates: list[str], times: list[str] | None) -> np.ndarray:
    """Epoch seconds (UTC) from date strings and optional HH:MM[:SS] strings (24:00 allowed)."""
    fmt = next((f for f in _DATE_FORMATS if _try(dates[0].strip(), f)), None)
    if fmt is None:
        raise ValueError(f"unrecognised date {dates[0]!r}")
    cache: dict[str, int] = {}
    out = np.empty(len(dates), dtype=np.int64)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for i, d in enumerate(dates):
        base = cache.get(d)
        if base is None:
            dt = datetime.strptime(d.strip(), fmt).replace(tzinfo=UTC)
            base = cache[d] = int((dt - epoch) / timedelta(seconds=1))
        secs = 0
        if times is not None:
            m = _TIME_RX.match(times[i].strip())
            if not m:
                raise ValueError(f"unrecognised time {times[i]!r}")
            secs = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)
        out[i] = base + secs
    return out


def _try(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
        return True
    except ValueError:
        return False


def column_values(col: Column, header: list[str], rows: list[list[str]], file: str) -> np.ndarray:
    """Logical values of one schema column from string rows."""
    sources = col.source if isinstance(col.source, list) else [col.source or col.name]
    idx = []
    for s in sources:
        if s not in header:
            raise UserError(Problem(f"column '{s}' (for '{col.name}') not in the file", file=file,
                                    hint=did_you_mean(s, header)))
        idx.append(header.index(s))
    raw = [[r[i] for r in rows] for i in idx]
    try:
        if len(raw) == 2:
            return parse_datetime(raw[0], raw[1])
        vals = raw[0]
        if col.codes is not None:
            out = np.empty(len(vals), dtype=np.int64)
            for i, v in enumerate(vals):
                v = v.strip()
                if v not in col.codes:
                    raise ValueError(f"text {v!r} has no code (known: {sorted(col.codes)})")
                out[i] = col.codes[v]
            return out
        if vals and _DATE_RX.match(vals[0].strip()):
            return parse_datetime(vals, None)
        if col.type.startswith("f") or col.scale:
            return np.array([float(v) if v.strip() else np.nan for v in vals], dtype=np.float64)
        return np.array([int(float(v)) if "." in v or "e" in v.lower() else int(v) for v in vals],
                        dtype=np.int64 if col.type != "u64" else np.uint64)
    except ValueError as exc:
        raise UserError(Problem(f"column '{col.name}': {exc}", file=file)) from None


_DATE_RX = re.compile(r"^\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}$")


def _sources(col: Column) -> list[str]:
    return col.source if isinstance(col.source, list) else [col.source or col.name]


def read_csv(path: str | Path, schema: Schema, batch_rows: int = 1 << 20) -> Iterator[dict[str, np.ndarray]]:
    header, rows, _ = read_table(path)
    for s in range(0, len(rows), batch_rows):
        part = rows[s : s + batch_rows]
        yield {c.name: column_values(c, header, part, str(path)) for c in schema.columns}


def read_jsonl(path: str | Path, schema: Schema, batch_rows: int = 1 << 18) -> Iterator[dict[str, np.ndarray]]:
    batch: list[dict] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(Problem(f"not valid JSON: {exc.msg}", file=str(path), line=lineno)) from None
            if len(batch) >= batch_rows:
                yield rows_to_columns(batch, schema, str(path))
                batch = []
    if batch:
        yield rows_to_columns(batch, schema, str(path))


def rows_to_columns(rows: list[dict], schema: Schema, file: str | None = None) -> dict[str, np.ndarray]:
    """JSON-like row dicts -> logical columns."""
    out = {}
    for c in schema.columns:
        key = _sources(c)[0] if len(_sources(c)) == 1 else c.name
        try:
            vals = [r[key] if key in r else r[c.name] for r in rows]
        except KeyError:
            present = set().union(*(r.keys() for r in rows[:10]))
            raise UserError(Problem(f"rows lack column '{c.name}'", file=file,
                                    hint=did_you_mean(c.name, present))) from None
        if c.codes is not None:
            vals = [c.codes[v] if isinstance(v, str) else v for v in vals]
        try:
            if c.dtype.kind in "iu" and not c.scale and all(isinstance(v, int) for v in vals):
                out[c.name] = np.array(vals, dtype=c.dtype)  # exact for the full 64-bit range
            else:
                out[c.name] = np.asarray(vals, dtype=np.float64 if c.scale or c.dtype.kind == "f" else None)
        except (OverflowError, ValueError, TypeError) as exc:
            raise UserError(Problem(f"column '{c.name}': {exc}", file=file)) from None
    return out


def read_file(path: str | Path, schema: Schema) -> tuple[int | None, Iterator[dict[str, np.ndarray]]]:
    """(row count if known, batches) for a CSV or JSONL file."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return None, read_jsonl(path, schema)
    header, rows, _ = read_table(path)

    def batches(step: int = 1 << 18) -> Iterator[dict[str, np.ndarray]]:
        for s in range(0, len(rows), step):
            part = rows[s : s + step]
            yield {c.name: column_values(c, header, part, str(path)) for c in schema.columns}

    return len(rows), batches()
