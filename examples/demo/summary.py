"""The demo's summary sink: counts what reached it and writes one JSON document at the end.

Inputs: ``stats`` (the clean step's counts), ``windows`` (aggregates) and ``anomalies``.
Configuration: ``summary_path``, the JSON file to write; ``examples``, how many anomalies to
keep as examples (the strongest of each mote, strongest first).
"""

import json

import zflow


def strength(anomaly):
    """Bound violations first, then by |z|."""
    return float("inf") if anomaly.get("rule") != "zscore" else abs(anomaly.get("z") or 0.0)


class Summary(zflow.Sink):
    inputs = ("stats", "windows", "anomalies")

    def setup(self, ctx):
        self.path = ctx.config["summary_path"]
        self.keep = int(ctx.config.get("examples", 5))
        self.clean = None
        self.windows = 0
        self.motes = set()
        self.anomalies = 0
        self.strongest = {}  # moteid -> its strongest anomaly
        self.written = False

    def on_input(self, port, value, ctx):
        if port == "stats":
            self.clean = value
        elif port == "windows":
            self.windows += 1
            self.motes.add(value.get("moteid"))
        else:
            self.anomalies += 1
            record = value.get("record") or {}
            example = {k: v for k, v in value.items() if k != "record"}
            example.update(start=record.get("start"), end=record.get("end"))
            mote = value.get("moteid")
            if mote not in self.strongest or strength(example) > strength(self.strongest[mote]):
                self.strongest[mote] = example

    def on_end(self, ctx):
        self.write(complete=True)

    def teardown(self, ctx):
        if not self.written:  # stopped before the end of the stream: write what arrived
            self.write(complete=False)

    def write(self, complete):
        self.written = True
        examples = sorted(self.strongest.values(), key=strength, reverse=True)[: self.keep]
        summary = {"complete": complete, "clean": self.clean, "windows": self.windows,
                   "motes": len(self.motes), "anomalies": self.anomalies,
                   "motes_with_anomalies": len(self.strongest), "examples": examples}
        with open(self.path, "w") as fh:
            json.dump(summary, fh, indent=2)
