"""``sensor-sim``: simulated motes with the Intel Berkeley Research Lab schema.

Each reading is ``{date, time, epoch, moteid, temperature, humidity, light, voltage}`` as in
the 2004 Intel Lab data set: 54 motes sampled every 31 s, indoor temperature (°C) following
a diurnal cycle, relative humidity (%) moving against it, light (lux) from office lamps and
daylight through windows, and battery voltage (V) that slowly decays. The flaws of the real
data are reproduced: missing readings (radio losses and outages of several epochs), faulty
readings (temperature spikes above 100 °C, negative humidity), and the garbage a mote
sends when its battery dies (temperature ~122 °C, humidity ~-4 %). ``event_rate`` adds
plausible, in-range anomalies (a mote in a sun patch or next to a heater for a few minutes)
for an anomaly detector to find. Everything is drawn from one seeded generator: the same
seed gives the same readings at any speed.

Configuration:
    motes (int, default 54); epochs (int, optional: stop after this many epochs, else run
    until the flow stops); period_s (float, default 31); speed (float >= 0, default 0):
    0 = as fast as possible, 1 = real time (one epoch per period_s), N = N times faster;
    seed (int, default 0); fault_rate (0..1, default 0.002): share of faulty readings;
    gap_rate (0..1, default 0.05): share of missing readings; event_rate (0..1, default 0):
    chance per mote and epoch that an in-range heat event starts; battery_epochs (default
    100000): typical epochs until a battery dies; weak_batteries (int, default 0): motes
    that start with a nearly flat battery and die during the run (within 50-90 % of
    ``epochs``, or of 1000 epochs for an endless run); start (ISO time, default
    2004-02-28T00:58:46); start_epoch (default 1); batch (bool, default false): one
    message per epoch, a dict of columns (numpy arrays; date/time as lists) marked
    ``{"batch": rows}`` in its metadata.

Ports: output ``out``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from operators._config import parse_config
from operators._pacing import Pacer
from operators._tables import batch_metadata
from operators.configs import SensorSimConfig
from zflow.runtime.api import Context, Source

FIELDS = ("date", "time", "epoch", "moteid", "temperature", "humidity", "light", "voltage")
DEAD_VOLTAGE = 2.35  # below this a mote's readings turn to garbage, as in the real data


@dataclass
class SimStats:
    readings: int = 0
    missing: int = 0
    faulty: int = 0  # injected faults, including dying batteries
    dead: int = 0  # readings from motes whose battery is dead
    events: int = 0  # heat events started
    by_epoch: list[int] = field(default_factory=list)


class Simulator:
    """The model, independent of the runtime: ``epoch()`` returns one epoch's readings as columns."""

    def __init__(self, cfg: SensorSimConfig):
        self.cfg = cfg
        n = cfg.motes
        rng = np.random.default_rng(cfg.seed)
        self.rng = rng
        self.moteid = np.arange(1, n + 1, dtype=np.int64)
        self.base_t = 19.5 + rng.normal(0.0, 1.2, n)
        self.amp_t = 2.0 + rng.uniform(0.0, 1.5, n)
        self.base_h = 38.0 + rng.normal(0.0, 3.0, n)
        self.window = rng.uniform(0.0, 1.0, n)  # daylight exposure
        self.lamp = rng.uniform(250.0, 450.0, n)
        self.v0 = rng.uniform(2.62, 2.76, n)
        self.life = cfg.battery_epochs * rng.uniform(0.6, 1.6, n)
        if cfg.weak_batteries:  # a generator of their own: the main stream stays the same
            weak_rng = np.random.default_rng([cfg.seed, 1])
            weak = weak_rng.choice(n, size=min(cfg.weak_batteries, n), replace=False)
            self.life[weak] = (cfg.epochs or 1000) * weak_rng.uniform(0.5, 0.9, len(weak))
        self.offset = rng.uniform(0.0, 1.0, n)  # motes do not sample at the same instant
        self.outage = np.zeros(n, dtype=np.int64)  # epochs of silence left
        self.event_left = np.zeros(n, dtype=np.int64)
        self.event_mag = np.zeros(n)
        start = datetime.fromisoformat(cfg.start)
        self.t0 = (start if start.tzinfo else start.replace(tzinfo=UTC)).timestamp()
        self.k = 0
        self.stats = SimStats()

    def event_time(self, k: int) -> float:
        return self.t0 + k * self.cfg.period_s

    def epoch(self) -> dict[str, Any]:
        """The next epoch's readings (present motes only) as a dict of columns."""
        cfg, rng, n, k = self.cfg, self.rng, self.cfg.motes, self.k
        self.k += 1
        epoch_no = cfg.start_epoch + k
        now = self.event_time(k)
        # Every draw happens every epoch, whatever is used: the stream depends on the seed only.
        noise = rng.normal(0.0, 1.0, (4, n))
        u = rng.uniform(0.0, 1.0, (6, n))
        spike = rng.uniform(100.0, 130.0, n)
        neg_h = rng.uniform(-4.5, -0.5, n)
        outage_len = rng.geometric(0.2, n)
        event_len = rng.integers(8, 21, n)
        event_mag = rng.uniform(6.0, 12.0, n)

        hour = ((now + self.offset) % 86400.0) / 3600.0
        temp = self.base_t + self.amp_t * np.cos(2 * math.pi * (hour - 15.0) / 24.0) + 0.08 * noise[0]
        daylight = np.clip(np.sin(math.pi * (hour - 6.0) / 13.0), 0.0, None)
        lamps = ((hour >= 8.0) & (hour < 19.0)) * self.lamp
        light = np.clip(lamps + 700.0 * self.window * daylight + 2.0 + 3.0 * np.abs(noise[2]), 0.0, None)

        # In-range heat events (sun patch, heater): what an anomaly detector should find.
        starting = (self.event_left == 0) & (u[3] < cfg.event_rate)
        self.event_left = np.where(starting, event_len, self.event_left)
        self.event_mag = np.where(starting, event_mag, self.event_mag)
        self.stats.events += int(starting.sum())
        active = self.event_left > 0
        temp = temp + active * self.event_mag
        light = light + active * 300.0
        self.event_left = np.maximum(self.event_left - 1, 0)

        humid = self.base_h - 1.6 * (temp - self.base_t) + 0.25 * noise[1]
        volt = self.v0 - (self.v0 - 2.3) * np.power((k + cfg.start_epoch) / self.life, 1.3) + 0.004 * noise[3]

        # Faults: random spikes, and garbage from motes whose battery is dying.
        dying = volt < DEAD_VOLTAGE
        dead = dying & (u[4] < np.clip((DEAD_VOLTAGE - volt) / 0.05, 0.2, 1.0))
        fault = (u[0] < cfg.fault_rate) | dead
        kind = np.floor(u[1] * 3).astype(np.int64)  # 0 temperature, 1 humidity, 2 both
        hot = fault & ((kind != 1) | dead)
        dry = fault & ((kind != 0) | dead)
        temp = np.where(hot, np.where(dead, 122.153 + 0.01 * noise[0], spike), temp)
        humid = np.where(dry, np.where(dead, -4.0 + 0.05 * np.abs(noise[1]), neg_h), humid)

        # Gaps: outages of a few epochs, and single lost packets.
        start_outage = (self.outage == 0) & (u[5] < cfg.gap_rate / 5.0)
        self.outage = np.where(start_outage, outage_len, self.outage)
        silent = self.outage > 0
        self.outage = np.maximum(self.outage - 1, 0)
        lost = silent | (u[2] < cfg.gap_rate / 2.0)
        keep = ~lost

        stats = self.stats
        present = int(keep.sum())
        stats.readings += present
        stats.missing += n - present
        stats.faulty += int((fault & keep).sum())
        stats.dead += int((dead & keep).sum())
        stats.by_epoch.append(present)

        stamps = now + self.offset[keep] + 0.001 * u[2][keep]
        when = [datetime.fromtimestamp(s, UTC) for s in stamps]
        return {
            "date": [w.strftime("%Y-%m-%d") for w in when],
            "time": [w.strftime("%H:%M:%S.%f") for w in when],
            "epoch": np.full(present, epoch_no, dtype=np.int64),
            "moteid": self.moteid[keep],
            "temperature": np.round(temp[keep], 4),
            "humidity": np.round(humid[keep], 4),
            "light": np.round(light[keep], 2),
            "voltage": np.round(volt[keep], 5),
        }


def epoch_rows(cols: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One epoch's columns as reading dicts (plain Python numbers)."""
    lists = [cols[f] if isinstance(cols[f], list) else cols[f].tolist() for f in FIELDS]
    for values in zip(*lists, strict=True):
        yield dict(zip(FIELDS, values, strict=True))


class SensorSim(Source):
    outputs = ("out",)

    def setup(self, ctx: Context) -> None:
        self.cfg = parse_config(SensorSimConfig, ctx, "sensor-sim")
        self.sim = Simulator(self.cfg)

    def run(self, ctx: Context) -> Iterator[Any]:
        cfg, sim = self.cfg, self.sim
        pacer = Pacer(ctx, cfg.speed)
        k = 0
        while cfg.epochs is None or k < cfg.epochs:
            if not pacer.wait(sim.event_time(k)):
                return
            cols = sim.epoch()
            k += 1
            if cfg.batch:
                if len(cols["moteid"]):
                    ctx.put(ctx.outputs[0] if ctx.outputs else "out", cols, batch_metadata(len(cols["moteid"])))
            else:
                yield from epoch_rows(cols)
        s = sim.stats
        ctx.log.info("%s: %d readings over %d epochs (%d missing, %d faulty, %d heat events)",
                     ctx.node, s.readings, k, s.missing, s.faulty, s.events)
