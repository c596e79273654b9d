"""Synthetic Intel Berkeley Research Lab sensor data (vectorised numpy batch generator).

54 Mica2Dot motes report every ~31 s (``epoch`` counter): temperature, humidity, light and
voltage, converted from integer ADC readings with the sensors' formulas, so values sit on the
same lattices as the real trace (temperature ``-38.4 + 0.0098*t``, light ``0.92*l``), with
daily cycles, per-mote offsets, slow drifts, noise, lost readings and outages, and dying
batteries whose temperatures run away (the real trace's faulty readings). ~2.3 M rows at full
scale. Columns match :func:`schema`.
"""

from __future__ import annotations

import numpy as np

from zflow.tsdb.schema import Schema

MOTES = 54
PERIOD = 31.0
START = 1078100000.0  # 2004-03-01
FULL_ROWS = 2_300_000


def schema(name: str = "intel", k: int = 4, n: int = 6, target_object_bytes: int = 4 << 20) -> Schema:
    return Schema.model_validate({
        "name": name,
        "columns": [
            {"name": "time", "type": "i64", "scale": 3},
            {"name": "epoch", "type": "u32"},
            {"name": "moteid", "type": "u8"},
            {"name": "temperature", "type": "i32", "scale": 4},
            {"name": "humidity", "type": "i32", "scale": 4},
            {"name": "light", "type": "i32", "scale": 2},
            {"name": "voltage", "type": "i32", "scale": 5},
        ],
        "time_column": "time",
        "coding": {"k": k, "n": n},
        "target_object_bytes": target_object_bytes,
    })


def generate(rows: int = FULL_ROWS, seed: int = 7) -> dict[str, np.ndarray]:
    """About ``rows`` rows, sorted by time (logical values, as a CSV of the trace would hold)."""
    rng = np.random.default_rng(seed)
    keep_p = 0.82
    n_epochs = int(np.ceil(rows / (MOTES * keep_p * 0.9)))
    ep = np.repeat(np.arange(n_epochs, dtype=np.int64), MOTES)
    mote = np.tile(np.arange(1, MOTES + 1, dtype=np.int64), n_epochs)
    keep = rng.random(len(ep)) < keep_p
    # outages: each mote is silent for a few random stretches
    for m in range(1, MOTES + 1):
        for _ in range(3):
            a = rng.integers(0, n_epochs)
            b = a + rng.integers(1, max(2, n_epochs // 60))
            keep &= ~((mote == m) & (ep >= a) & (ep < b))
    ep, mote = ep[keep][:rows], mote[keep][:rows]
    t = START + ep * PERIOD + rng.uniform(0, PERIOD, len(ep))
    order = np.argsort(t, kind="stable")
    ep, mote, t = ep[order], mote[order], t[order]
    day = 2 * np.pi * ((t - START) / 86400.0)
    off_t = rng.normal(0, 1.2, MOTES + 1)[mote]
    drift = np.cumsum(rng.normal(0, 0.002, n_epochs))[ep]
    temp = 20 + 3.5 * np.sin(day - 1.8) + off_t + drift + rng.normal(0, 0.04, len(ep))
    # dying batteries: voltage falls, and some motes' temperatures run away near the end
    life = rng.uniform(0.6, 1.6, MOTES + 1)[mote]
    frac = ep / max(1, n_epochs - 1)
    volt = 2.75 - 0.45 * (frac / life) ** 2 + rng.normal(0, 0.004, len(ep))
    dying = volt < 2.35
    temp = np.where(dying, temp + (2.35 - volt) * 300, temp)
    t_raw = np.clip(np.rint((temp + 38.4) / 0.0098), 0, 16383)
    temperature = np.round(-38.4 + 0.0098 * t_raw, 4)
    hum = 38 - 1.2 * (temp - 20) + rng.normal(0, 1.5, MOTES + 1)[mote] + rng.normal(0, 0.15, len(ep))
    h_raw = np.clip(np.rint(np.interp(hum, -4 + 0.0405 * np.arange(4096) - 2.8e-6 * np.arange(4096) ** 2,
                                      np.arange(4096))), 0, 4095)
    humidity = np.round(-4 + 0.0405 * h_raw - 2.8e-6 * h_raw**2, 4)
    humidity = np.where(dying, np.round(humidity * 0.1 - 4, 4), humidity)  # faulty humidity too
    sun = np.clip(np.sin(day - 1.6), 0, None) ** 1.5
    lamp = (((t - START) % 86400) > 8 * 3600) & (((t - START) % 86400) < 19 * 3600)
    l_raw = np.rint(sun * rng.uniform(80, 600, MOTES + 1)[mote] + lamp * 120 + rng.exponential(2, len(ep)))
    l_raw = np.clip(l_raw, 0, 2008)
    light = np.round(0.92 * l_raw, 2)
    v_raw = np.rint(1.2 * 1023 / np.clip(volt, 1.9, 3.0) * 4) / 4
    voltage = np.round(1.2 * 1023 / v_raw, 5)
    return {
        "time": np.round(t, 3),
        "epoch": ep.astype(np.int64),
        "moteid": mote,
        "temperature": temperature,
        "humidity": humidity,
        "light": light,
        "voltage": voltage,
    }
