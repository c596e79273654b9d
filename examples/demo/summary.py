"""The demo's summary sink: counts what reached it and writes one JSON document at the end.

Inputs: ``stats`` (the clean step's counts), ``windows`` (aggregates) and ``anomalies``.
Configuration: ``summary_path``, the the JSON summary, ``examples`` (anomalies kept as examples).
"""

import json

import zflow


class Summary(zflow.Sink):
    inputs = ("stats", "windows", "anomalies")

    def setup(self, ctx):
        self.path = ctx.config["summary_path"]
        self.keep = int(ctx.config.get("examples", 5))
        self.written = False
        self.summary = {"clean": None, "windows": 0, "motes": set(), "anomalies": 0, "examples": []}

    def on_input(self, port, value, ctx):
        s = self.summary
        if port == "stats":
            s["clean"] = value
        elif port == "windows":
            s["windows"] += 1
            s["motes"].add(value.get("moteid"))
        else:
            s["anomalies"] += 1
            if len(s["examples"]) < self.keep:
                record = value.get("record") or {}
                example = {k: v for k, v in value.items() if k != "record"}
                s["examples"].append(dict(example, start=record.get("start"), end=record.get("end")))

    def on_end(self, ctx):
        self.write(complete=True)

    def teardown(self, ctx):
        if not self.written:  # stopped before the end of the stream: write what arrived
            self.write(complete=False)

    def write(self, complete):
        self.written = True
        s = dict(self.summary, motes=len(self.summary["motes"]), complete=complete)
        with open(self.path, "w") as fh:
            json.dump(s, fh, indent=2)
