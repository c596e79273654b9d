"""Fault-suite nodes, run by real node hosts: a sequence-numbered source, a relay and a checking
sink. They record what they did in files under ``config.dir`` so that what a test reads survives
the SIGKILL of any of them:

- ``<node>.pid``: the host's pid, one line per start (the injectors signal it);
- ``<node>.sent``: the source's last sequence number, rewritten as it goes (``epoch seq``);
- ``<node>.<port>.seq``: the sink's record, one ``epoch seq`` line per message, written with one
  unbuffered ``write`` each, so a killed sink loses nothing it had recorded;
- ``<node>.stats.json``: what the node's statistics queryable said at end of stream.

The epoch is a random token drawn at each start of the source: a restarted source (or a stale
copy that a returning daemon resumed) is told apart from the one that ran before.

This file is loaded by path (``operator: tests/faultlib/nodes.py:SeqSource``): stdlib and zflow only.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import Any

import zflow


def _record_pid(ctx: Any) -> None:
    path = os.path.join(ctx.config["dir"], f"{ctx.node}.pid")
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")


class SeqSource(zflow.Source):
    """Emits ``{"epoch", "seq", "pad"}`` for seq = 0..n-1 (``n: 0``: until stopped), at ``rate``
    messages a second (0: flat out), each padded to ``size`` bytes."""

    def setup(self, ctx: Any) -> None:
        _record_pid(ctx)
        self.epoch = secrets.token_hex(4)
        self.sent_path = os.path.join(ctx.config["dir"], f"{ctx.node}.sent")

    def run(self, ctx: Any) -> Any:
        n = int(ctx.config.get("n", 0))
        rate = float(ctx.config.get("rate", 0))
        pad = b"x" * int(ctx.config.get("size", 0))
        period = 1.0 / rate if rate else 0.0
        start = time.monotonic()
        seq, last = 0, -1
        try:
            while (n == 0 or seq < n) and ctx.running:
                if period:
                    delay = start + seq * period - time.monotonic()
                    if delay > 0 and not ctx.sleep(delay):
                        break
                last = seq  # the host sends what is yielded before it may close the generator
                yield {"epoch": self.epoch, "seq": seq, "pad": pad}
                if seq % 64 == 0:
                    self._note(seq)
                seq += 1
        finally:
            self._note(last)

    def _note(self, seq: int) -> None:
        if seq < 0:
            return
        tmp = self.sent_path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{self.epoch} {seq}\n")
        os.replace(tmp, self.sent_path)


class Relay(zflow.Operator):
    """Passes every message on unchanged (an operator on the link under test)."""

    def setup(self, ctx: Any) -> None:
        _record_pid(ctx)

    def on_input(self, port: str, value: Any, ctx: Any) -> Any:
        return value


class CheckSink(zflow.Sink):
    """Records ``epoch seq`` of every message; stalls ``stall_s`` seconds in its handler when it
    receives message ``stall_at`` (the consumer that falls behind), and ``delay`` per message."""

    def setup(self, ctx: Any) -> None:
        _record_pid(ctx)
        self.fds: dict[str, int] = {}
        self.delay = float(ctx.config.get("delay", 0))
        self.stall_at = ctx.config.get("stall_at")
        self.stall_s = float(ctx.config.get("stall_s", 0))

    def on_input(self, port: str, value: Any, ctx: Any) -> None:
        fd = self.fds.get(port)
        if fd is None:
            path = os.path.join(ctx.config["dir"], f"{ctx.node}.{port}.seq")
            fd = self.fds[port] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, f"{value['epoch']} {value['seq']}\n".encode())
        if self.stall_at is not None and value["seq"] == int(self.stall_at):
            time.sleep(self.stall_s)
        elif self.delay:
            time.sleep(self.delay)

    def on_end(self, ctx: Any) -> None:
        """Ask this node's statistics queryable for its drop counts while the host still runs."""
        path = os.path.join(ctx.config["dir"], f"{ctx.node}.stats.json")
        with open(path, "w") as fh:
            json.dump(_query_stats(ctx), fh)

    def teardown(self, ctx: Any) -> None:
        for fd in self.fds.values():
            os.close(fd)


def _query_stats(ctx: Any) -> dict[str, Any]:
    from zflow import keyexprs

    builder = getattr(keyexprs, "node_stats", None)
    if builder is None:
        return {"error": "zflow.keyexprs has no node_stats(flow, instance, node): no statistics queryable"}
    replies = []
    for reply in ctx.session.get(builder(ctx.flow, ctx.instance, ctx.node), timeout=5.0):
        if reply.ok is not None:
            replies.append(json.loads(reply.ok.payload.to_bytes()))
    return replies[0] if replies else {"error": "the statistics queryable did not answer"}
