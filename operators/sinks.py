"""``jsonl-sink`` and ``print``: sinks that write what they receive to a file or to stdout.

``jsonl-sink`` configuration:
    path (str, required): output file; parent directories are created.
    mode ("w" | "a", default "w"): truncate or append.
    flush_every (int >= 0, default 1): flush after every N lines; 0 = only when the stream
        ends (fastest; a reader sees the file complete only at the end).
    fsync (bool, default false): also fsync on each flush (survives a power cut).
    explode (bool, default true): a column batch is written as one line per row.
    port_field (str, optional): add the input port name under this key (several inputs).

``print`` configuration:
    format (str, optional): a ``str.format`` template over the value's fields plus
        ``{value}``, ``{port}``, ``{node}`` and ``{n}`` (message counter), e.g.
        ``"mote {moteid}: {temperature:.1f} C"``; default: the value's repr.
    every (int >= 1, default 1): print one message in N.
    limit (int, optional): stop printing after this many lines (messages still consumed).

Ports: input ``in`` (declare more inputs in the descriptor to write several streams).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from operators._config import fail, parse_config
from operators._tables import is_batch, jsonable, metadata_of, rows
from operators.configs import JsonlSinkConfig, PrintConfig
from zflow.runtime.api import Context, Sink


class JsonlSink(Sink):
    inputs = ("in",)

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(JsonlSinkConfig, ctx, "jsonl-sink")
        parent = os.path.dirname(os.path.abspath(self.cfg.path))
        try:
            os.makedirs(parent, exist_ok=True)
            self.file = open(self.cfg.path, self.cfg.mode, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise fail(ctx, "jsonl-sink", "path", f"cannot open {self.cfg.path} for writing: {exc.strerror}") from None
        self.pending = 0
        self.written = 0

    def on_input(self, port: str, value: Any, ctx: Context) -> None:
        cfg = self.cfg
        meta = metadata_of(ctx)
        items = rows(value, meta) if cfg.explode and is_batch(value, meta) else (value,)
        dumps = json.dumps
        for item in items:
            if cfg.port_field is not None:
                item = {cfg.port_field: port, **item} if isinstance(item, dict) else {cfg.port_field: port, "value": item}
            self.file.write(dumps(item, default=jsonable, separators=(",", ":")) + "\n")
            self.written += 1
            self.pending += 1
        if cfg.flush_every and self.pending >= cfg.flush_every:
            self._flush()

    def _flush(self) -> None:
        self.file.flush()
        if self.cfg.fsync:
            os.fsync(self.file.fileno())
        self.pending = 0

    def on_end(self, ctx: Context) -> None:
        self._flush()
        ctx.log.info("%s: wrote %d lines to %s", ctx.node, self.written, self.cfg.path)

    def teardown(self, ctx: Context) -> None:
        file = getattr(self, "file", None)
        if file is not None and not file.closed:
            self._flush()
            file.close()


class Print(Sink):
    inputs = ("in",)

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(PrintConfig, ctx, "print")
        self.count = 0
        self.printed = 0
        self.warned = False

    def on_input(self, port: str, value: Any, ctx: Context) -> None:
        self.count += 1
        cfg = self.cfg
        if (self.count - 1) % cfg.every or (cfg.limit is not None and self.printed >= cfg.limit):
            return
        self.printed += 1
        sys.stdout.write(self.render(port, value, ctx) + "\n")
        sys.stdout.flush()

    def render(self, port: str, value: Any, ctx: Context) -> str:
        if self.cfg.format is None:
            return repr(value)
        fields: dict[str, Any] = {"value": value, "port": port, "node": ctx.node, "n": self.count}
        if isinstance(value, dict):
            fields.update(value)  # the value's own fields win over the extras
        try:
            return self.cfg.format.format_map(fields)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            if not self.warned:
                self.warned = True
                ctx.log.warning("%s: format %r does not fit %r (%s); printing values as they are",
                                ctx.node, self.cfg.format, value, exc)
            return repr(value)
