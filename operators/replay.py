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
        a dict of columns (numpy arrays for numeric columns, lists for text) sent with the
        metadata ``{"batch": rows}`` that window, threshold and jsonl-sink understand.
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

Under a daemon a replay that is re-placed or restarted resumes after the rows it sent
(``operators._checkpoint.Sequence``): no row is ever sent twice; a crash skips at most about
0.2 s worth of rows.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from operators._checkpoint import Sequence
from operators._config import fail, parse_config
from operators._pacing import Pacer
from operators._tables import batch_metadata, parse_time
from operators._tables import columns as to_columns
from operators.configs import CsvConfig, JsonlConfig, ReplayConfig
from zflow.errors import Problem, UserError, did_you_mean
from zflow.runtime.api import Context, Source

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
    """Reading, pacing and batching shared by both replays.

    ``open`` (called from ``setup``) reads the head of the file, so a missing column or an
    unreadable time stops the flow at start-up with a clear message; ``read`` yields rows.
    """

    outputs = ("out",)
    operator = "replay"
    model: type[ReplayConfig] = ReplayConfig
    fixed_columns = True

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(self.model, ctx, self.operator)
        self.rows = Sequence(ctx)
        if self.rows.first:
            ctx.log.info("resuming after row %d (checkpoint)", self.rows.first)
        if not os.path.isfile(self.cfg.path):
            raise fail(ctx, self.operator, "path", f"file not found: {self.cfg.path} (working directory {os.getcwd()})")
        self.file = open(self.cfg.path, newline="", encoding="utf-8-sig")  # noqa: SIM115
        first = self.open(ctx)
        if first is not None:
            names = list(first)
            checks = [("time_column", self._time_columns())]
            if self.fixed_columns:  # JSON lines may leave out keys: a missing one reads as null
                checks.append(("columns", self.cfg.columns or []))
            for key, wanted in checks:
                for col in wanted:
                    if col not in names:
                        raise fail(ctx, self.operator, key, f"no column {col!r} in {self.cfg.path}",
                                   did_you_mean(col, names))
            if self.cfg.time_column:
                try:
                    self._time(first)
                except ValueError as exc:
                    raise fail(ctx, self.operator, "time_format", f"cannot read the first row's time: {exc}",
                               "time_format takes strptime codes, e.g. '%m/%d/%Y %H:%M'") from None

    def teardown(self, ctx: Context) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()

    def open(self, ctx: Context) -> dict[str, Any] | None:
        """Read the head of ``self.file``; return the first row (None for an empty file)."""
        raise NotImplementedError

    def read(self, ctx: Context) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _time_columns(self) -> list[str]:
        col = self.cfg.time_column
        return col if isinstance(col, list) else [col] if col else []

    def _time(self, row: dict[str, Any]) -> float | None:
        col = self.cfg.time_column
        if not col:
            return None
        value = " ".join(str(row[c]) for c in col) if isinstance(col, list) else row[col]
        return parse_time(value, self.cfg.time_format)

    def run(self, ctx: Context) -> Iterator[Any]:
        cfg = self.cfg
        pacer = Pacer(ctx, cfg.speed)
        source: Iterable[dict[str, Any]] = self.read(ctx)
        if cfg.limit is not None or self.rows.first:
            source = islice(source, self.rows.first, cfg.limit)
        keep = cfg.columns
        pending: list[dict[str, Any]] = []
        take = self.rows.take
        for row in source:
            take()
            stamp = self._time(row) if cfg.speed > 0 else None
            if keep is not None:
                row = {k: row.get(k) for k in keep}
            if cfg.batch:
                pending.append(row)
                if len(pending) < cfg.batch:
                    continue
                if not pacer.wait(stamp):
                    return
                ctx.put(self.port(ctx), to_columns(pending), batch_metadata(len(pending)))
                pending = []
            else:
                if not pacer.wait(stamp):
                    return
                yield row
        if pending:
            ctx.put(self.port(ctx), to_columns(pending), batch_metadata(len(pending)))

    @staticmethod
    def port(ctx: Context) -> str:
        return ctx.outputs[0] if ctx.outputs else "out"


class CsvReplay(_Replay):
    operator = "csv-replay"
    model = CsvConfig

    def open(self, ctx: Context) -> dict[str, Any] | None:
        cfg: CsvConfig = self.cfg  # type: ignore[assignment]
        for _ in range(cfg.skip_rows):
            self.file.readline()
        self.reader = csv.reader(self.file, delimiter=cfg.delimiter)
        names: list[str] | None = None
        if cfg.header_row is not None:
            for _ in range(cfg.header_row):
                next(self.reader, None)
            names = next(self.reader, None)
        self.sample = list(islice(self.reader, cfg.infer_rows))
        if names is None:
            width = max((len(r) for r in self.sample), default=0)
            names = [f"col{i}" for i in range(width)]
        names = [n.strip() for n in names]
        kinds = [cfg.types.get(n) or _infer(r[i] if i < len(r) else "" for r in self.sample)
                 for i, n in enumerate(names)]
        self.pairs = list(zip(names, [_converter(k) for k in kinds], strict=True))
        rows = self._rows(self.sample[:1])
        return next(rows, dict.fromkeys(names))

    def _rows(self, raws: Iterable[list[str]]) -> Iterator[dict[str, Any]]:
        pairs = self.pairs
        for raw in raws:
            if raw:
                yield {n: (c(raw[i]) if i < len(raw) else None) for i, (n, c) in enumerate(pairs)}

    def read(self, ctx: Context) -> Iterator[dict[str, Any]]:
        yield from self._rows(self.sample)
        self.sample = []
        yield from self._rows(self.reader)


class JsonlReplay(_Replay):
    operator = "jsonl-replay"
    model = JsonlConfig
    fixed_columns = False

    def open(self, ctx: Context) -> dict[str, Any] | None:
        self.lines = enumerate(self.file, 1)
        self.head: list[tuple[int, dict[str, Any]]] = []
        for row in self._rows(ctx):
            self.head.append(row)
            return row[1]
        return None

    def _rows(self, ctx: Context) -> Iterator[tuple[int, dict[str, Any]]]:
        cfg: JsonlConfig = self.cfg  # type: ignore[assignment]
        for lineno, line in self.lines:
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
            yield lineno, row

    def read(self, ctx: Context) -> Iterator[dict[str, Any]]:
        for _, row in self.head:
            yield row
        self.head = []
        for _, row in self._rows(ctx):
            yield row
