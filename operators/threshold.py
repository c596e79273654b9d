"""``threshold``: an anomaly detector with fixed bounds and/or z-scores against running statistics.

Configuration:
    fields ({field: rule}, required): what to check, e.g.
        ``temperature_mean: {zscore: 4}`` or ``voltage_min: {min: 2.4}`` or both; a rule has
        ``min``, ``max`` (fixed bounds) and ``zscore`` (flag |x - mean| > zscore * std, where
        mean and std are running statistics over the earlier values of this field and key,
        computed with Welford's algorithm).
    key (str | list[str], optional): separate running statistics per key value (e.g. moteid).
    halflife (number > 0, optional): weigh recent values more — exponentially weighted mean
        and std where a value's weight halves after ``halflife`` newer values of its key; for
        series that drift (a daily cycle), so the detector follows the trend. Default:
        every earlier value counts the same (Welford).
    min_count (int >= 2, default 10): values seen before z-scores are checked (warm-up).
    min_std (float >= 0, default 1e-9): std floor, so a flat series does not flag every wiggle.
    learn_anomalies (bool, default false): also feed anomalous values into the statistics
        (by default they are kept out, so one spike does not mask the next).
    pass_clean (bool, default true): send records without anomaly on ``out``.
    pass_all (bool, default false): send every record on ``out`` (anomalous ones too).

An anomaly record is ``{field, value, rule: min|max|zscore, limit, z, mean, std, key..., record}``,
one per field that fails, on output ``anomalies``. Column batches (``batch`` metadata) are
checked row by row.

Ports: input ``in``; outputs ``out`` and ``anomalies``.
"""

from __future__ import annotations

import math
from typing import Any

from operators._config import parse_config
from operators._tables import metadata_of, rows
from operators.configs import ThresholdConfig
from zflow.runtime.api import Context, Operator


class Welford:
    """Running mean and (population) variance in one pass, numerically stable."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0


class EWStats:
    """Exponentially weighted mean and variance (incremental form), same interface as Welford."""

    __slots__ = ("alpha", "mean", "n", "var")

    def __init__(self, halflife: float) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = x
            return
        diff = x - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1.0 - self.alpha) * (self.var + diff * incr)

    @property
    def std(self) -> float:
        return math.sqrt(self.var)


class Threshold(Operator):
    inputs = ("in",)
    outputs = ("out", "anomalies")

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(ThresholdConfig, ctx, "threshold")
        self.keys = [self.cfg.key] if isinstance(self.cfg.key, str) else list(self.cfg.key or [])
        self.stats: dict[tuple[Any, ...], Welford | EWStats] = {}
        self.seen = 0
        self.flagged = 0
        self.out_port = "out" if "out" in ctx.outputs or not ctx.outputs else None
        self.anomaly_port = "anomalies" if "anomalies" in ctx.outputs or not ctx.outputs else None

    def check(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The anomalies of one record (and the statistics updated with its clean values)."""
        cfg = self.cfg
        key = tuple(row.get(k) for k in self.keys)
        found: list[dict[str, Any]] = []
        for name, rule in cfg.fields.items():
            value = row.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
                continue
            stats = self.stats.get((*key, name))
            if stats is None:
                stats = self.stats[(*key, name)] = EWStats(cfg.halflife) if cfg.halflife else Welford()
            anomaly: dict[str, Any] | None = None
            if rule.min is not None and value < rule.min:
                anomaly = {"rule": "min", "limit": rule.min}
            elif rule.max is not None and value > rule.max:
                anomaly = {"rule": "max", "limit": rule.max}
            z = None
            if rule.zscore is not None and stats.n >= cfg.min_count:
                std = max(stats.std, cfg.min_std)
                z = (value - stats.mean) / std
                if anomaly is None and abs(z) > rule.zscore:
                    anomaly = {"rule": "zscore", "limit": rule.zscore}
            if anomaly is not None:
                anomaly = {
                    "field": name, "value": value, **anomaly,
                    "z": None if z is None else round(z, 3),
                    "mean": stats.mean if stats.n else None, "std": stats.std if stats.n else None,
                    **dict(zip(self.keys, key, strict=True)), "record": row,
                }
                found.append(anomaly)
            if anomaly is None or cfg.learn_anomalies:
                stats.add(float(value))
        return found

    def on_input(self, port: str, value: Any, ctx: Context) -> None:
        for row in rows(value, metadata_of(ctx)):
            self.seen += 1
            found = self.check(row)
            if found:
                self.flagged += 1
                if self.anomaly_port:
                    for anomaly in found:
                        ctx.put(self.anomaly_port, anomaly)
            if self.out_port and (self.cfg.pass_all or (self.cfg.pass_clean and not found)):
                ctx.put(self.out_port, row)

    def on_end(self, ctx: Context) -> None:
        ctx.log.info("%s: %d of %d records anomalous", ctx.node, self.flagged, self.seen)
