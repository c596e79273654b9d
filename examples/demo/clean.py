"""A user operator next to the built-ins: drop sensor readings that cannot be real.

The Intel Lab motes report temperatures above 100 °C and negative humidity when a reading
is corrupted or the battery is dying; an indoor lab is never like that. Bounds come from
the node's configuration (defaults below). On end of stream the counts go out on ``stats``.
"""

import zflow

LIMITS = {"temperature": (-10.0, 60.0), "humidity": (0.0, 100.0), "voltage": (2.0, 3.3)}


class Clean(zflow.Operator):
    inputs = ("in",)
    outputs = ("out", "stats")

    def setup(self, ctx):
        self.limits = {f: tuple(ctx.config.get(f"{f}_range", lo_hi)) for f, lo_hi in LIMITS.items()}
        self.seen = 0
        self.dropped = dict.fromkeys(self.limits, 0)

    def on_input(self, port, reading, ctx):
        self.seen += 1
        for field, (lo, hi) in self.limits.items():
            value = reading.get(field)
            if value is None or not lo <= value <= hi:
                self.dropped[field] += 1  # counted under the first field that is out of range
                return None
        ctx.put("out", reading)

    def on_end(self, ctx):
        dropped = sum(self.dropped.values())
        ctx.log.info("clean: kept %d of %d readings, dropped %s", self.seen - dropped, self.seen, self.dropped)
        ctx.put("stats", {"seen": self.seen, "kept": self.seen - dropped, "dropped": self.dropped})
