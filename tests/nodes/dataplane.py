"""Nodes for the data-plane guarantee tests: sequence-numbered sources and stalling sinks."""

import json
import os
import time

import zflow


@zflow.source
def seq(ctx):
    """``n`` messages numbered 0..n-1, flat out, each padded to ``size`` bytes."""
    pad = "x" * int(ctx.config.get("size", 0))
    for i in range(int(ctx.config.get("n", 100))):
        yield {"i": i, "pad": pad}


@zflow.source
def endless(ctx):
    i = 0
    while ctx.sleep(0.005):
        yield {"i": i}
        i += 1


class Record(zflow.Sink):
    """Appends each sequence number to ``path``; writes its pid to ``path.pid``; sleeps
    ``stall`` seconds on the first message and ``delay`` on every one."""

    def setup(self, ctx):
        self.file = open(ctx.config["path"], "a")  # noqa: SIM115
        with open(ctx.config["path"] + ".pid", "w") as f:
            f.write(str(os.getpid()))
        self.stall = float(ctx.config.get("stall", 0))
        self.delay = float(ctx.config.get("delay", 0))

    def on_input(self, port, value, ctx):
        if self.stall:
            time.sleep(self.stall)
            self.stall = 0
        if self.delay:
            time.sleep(self.delay)
        self.file.write(json.dumps(value["i"]) + "\n")
        self.file.flush()

    def teardown(self, ctx):
        self.file.close()
