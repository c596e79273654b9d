"""``csv-replay`` and ``jsonl-replay``: sources that replay a recorded file, optionally paced.

Shared configuration:
    path (str, required): the file (relative paths are taken from the flow's working directory).
    speed (float >= 0, default 0): 0 = as fast as possible; 1 = real time following
        ``time_column``; N = N times faster than real time.
    time_column (str | list[str]): the timestamp column(s) used for pacing (several columns
        are joined with a space, e.g. a date and a time column). Required when speed > 0.
    time_format (str): strptime format for the timestamp (default: ISO 8601, or numbers as
        Unix seconds). ``24:00`` is read as midnight of the next day.
    batch (int >= 0, default 0): 0 = one message per row (a dict); N = one message per N rows,
        a dict of columns (numpy arrays for numeric columns, lists for text).
    limit (int): stop after this many rows.
    columns (list[str]): keep only these columns.

``csv-replay`` also takes:
    delimiter (str, default ","); skip_rows (int, default 0): lines skipped at the top of the
    file (e.g. a station header); header_row (int | null, default 0): the line, counted after
    ``skip_rows``, holding the column names (null = no header, columns are col0, col1, ...);
    types ({column: int|float|str}): overrides inference; infer_rows (int, default 1000):
    rows sampled to infer each column's type (int, else float, else str; empty = missing).

``jsonl-replay`` also takes:
    on_error ("fail" | "skip", default "fail"): what a line that is not a JSON object does.

Ports: output ``out``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Literal

from pydantic import Field

from operators._config import Config, fail, parse_config
from operators._pacing import Pacer
from operators._tables import columns as to_columns
from operators._tables import parse_time
from zflow.errors import Problem, UserError
from zflow.runtime.api import Context, Source


class ReplayConfig(Config):
    path: str
    speed: float = Field(0.0, ge=0)
    time_column: str | list[str] | None = None
    time_format: str | None = None
    batch: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=0)
    columns: list[str] | None = None


class CsvConfig(ReplayConfig):
    delimiter: str = Field(",", min_length=1, max_length=1)
    skip_rows: int = Field(0, ge=0)
    header_row: int | None = Field(0, ge=0)
    types: dict[str, Literal["int", "float", "str"]] = {}
    infer_rows: int = Field(1000, ge=1)


class JsonlConfig(ReplayConfig):
    on_error: Literal["fail", "skip"] = "fail"


_CONVERT: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


def _infer(values: Iterable[str]) -> str:
    kind = "int"
    seen = False
    for text in values:
        if text == "":
            continue
        seen = True
        if kind == "int":
            try:
                int(text)
                continue
            except ValueError:
                kind = "float"
        try:
            float(text)
        except ValueError:
            return "str"
    return kind if seen else "str"


def _converter(kind: str) -> Callable[[str], Any]:
    convert = _CONVERT[kind]

    def run(text: str) -> Any:
        if text == "":
            return None
        try:
            return convert(text)
        except ValueError:  # a value the sample did not foresee: keep it, as a number if it is one
            try:
                return float(text)
            except ValueError:
                return text

    return run


class _Replay(Source):
    """Reading, pacing and batching shared by both replays; subclasses yield row dicts."""

    outputs = ("out",)
    operator = "replay"
    model: type[ReplayConfig] = ReplayConfig

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(self.model, ctx, self.operator)
        if not os.path.isfile(self.cfg.path):
            raise fail(ctx, self.operator, "path", f"file not found: {self.cfg.path} (working directory {os.getcwd()})")
        if self.cfg.speed > 0 and not self.cfg.time_column:
            raise fail(ctx, self.operator, "time_column",
                       f"speed {self.cfg.speed:g} needs a time_column to follow",
                       "set time_column, or speed: 0 to replay as fast as possible")

    def read(self, ctx: Context) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _time(self, row: dict[str, Any]) -> float | None:
        col = self.cfg.time_column
        if not col:
            return None
        value = " ".join(str(row[c]) for c in col) if isinstance(col, list) else row[col]
        return parse_time(value, self.cfg.time_format)

    def _check_time_columns(self, ctx: Context, names: Iterable[str]) -> None:
        col = self.cfg.time_column
        wanted = col if isinstance(col, list) else [col] if col else []
        from zflow.errors import did_you_mean

        names = list(names)
        for c in wanted:
            if c not in names:
                raise fail(ctx, self.operator, "time_column", f"no column {c!r} in {self.cfg.path}",
                           did_you_mean(c, names))

    def run(self, ctx: Context) -> Iterator[Any]:
        cfg = self.cfg
        pacer = Pacer(ctx, cfg.speed)
        source: Iterable[dict[str, Any]] = self.read(ctx)
        if cfg.limit is not None:
            source = islice(source, cfg.limit)
        keep = cfg.columns
        pending: list[dict[str, Any]] = []
        for row in source:
            stamp = self._time(row) if cfg.speed > 0 else None
            if keep is not None:
                row = {k: row.get(k) for k in keep}
            if cfg.batch:
                pending.append(row)
                if len(pending) < cfg.batch:
                    continue
                if not pacer.wait(stamp):
                    return
                yield to_columns(pending)
                pending = []
            else:
                if not pacer.wait(stamp):
                    return
                yield row
        if pending:
            yield to_columns(pending)


class CsvReplay(_Replay):
    operator = "csv-replay"
    model = CsvConfig

    def read(self, ctx: Context) -> Iterator[dict[str, Any]]:
        cfg: CsvConfig = self.cfg  # type: ignore[assignment]
        with open(cfg.path, newline="", encoding="utf-8-sig") as fh:
            for _ in range(cfg.skip_rows):
                fh.readline()
            reader = csv.reader(fh, delimiter=cfg.delimiter)
            names: list[str] | None = None
            if cfg.header_row is not None:
                for _ in range(cfg.header_row):
                    next(reader, None)
                names = next(reader, None)
                if names is None:
                    return
            sample = list(islice(reader, cfg.infer_rows))
            width = max([len(names or [])] + [len(r) for r in sample]) if sample or names else 0
            if names is None:
                names = [f"col{i}" for i in range(width)]
            names = [n.strip() for n in names]
            self._check_time_columns(ctx, names)
            for col in (cfg.columns or []):
                if col not in names:
                    from zflow.errors import did_you_mean

                    raise fail(ctx, self.operator, "columns", f"no column {col!r} in {cfg.path}",
                               did_you_mean(col, names))
            kinds = [cfg.types.get(n) or _infer(r[i] if i < len(r) else "" for r in sample)
                     for i, n in enumerate(names)]
            convert = [_converter(k) for k in kinds]
            pairs = list(zip(names, convert, strict=True))
            for raw in _chain(sample, reader):
                if not raw:
                    continue
                yield {n: (c(raw[i]) if i < len(raw) else None) for i, (n, c) in enumerate(pairs)}


def _chain(first: list[list[str]], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield from first
    yield from rest


class JsonlReplay(_Replay):
    operator = "jsonl-replay"
    model = JsonlConfig

    def read(self, ctx: Context) -> Iterator[dict[str, Any]]:
        cfg: JsonlConfig = self.cfg  # type: ignore[assignment]
        checked = False
        with open(cfg.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                except ValueError as exc:
                    if cfg.on_error == "skip":
                        ctx.log.warning("%s:%d: skipped: %s", cfg.path, lineno, exc)
                        continue
                    raise UserError(Problem(f"not a JSON object line: {exc}", file=cfg.path, line=lineno,
                                            hint="set on_error: skip to skip bad lines")) from None
                if not checked:
                    self._check_time_columns(ctx, row)
                    checked = True
                yield row
