"""Emit a run every interval, or on a cron schedule."""

import asyncio
import re
import time


def parse_interval(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(text))
    if not m:
        raise ValueError(f"interval {text!r}: expected a number with a unit (100ms, 10s, 5m, 1h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    return float(m.group(1)) * scale


def _field(spec: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/")
            step = int(s)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            a, b = (int(x) for x in part.split("-"))
        else:
            a = b = int(part)
        out.update(range(a, b + 1, step))
    return out


def cron_matches(expr: str, t: time.struct_time) -> bool:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r}: expected 5 fields (minute hour day month weekday)")
    minute, hour, day, month, weekday = fields
    return (t.tm_min in _field(minute, 0, 59) and t.tm_hour in _field(hour, 0, 23)
            and t.tm_mday in _field(day, 1, 31) and t.tm_mon in _field(month, 1, 12)
            and (t.tm_wday + 1) % 7 in _field(weekday, 0, 6))


async def run(service, input_values: dict) -> None:
    count = input_values.get("count") or 0
    cron = input_values.get("cron")
    period = parse_interval(input_values.get("interval") or "10s")
    index = 0
    next_at = time.time()
    while count == 0 or index < count:
        if cron:
            now = time.time()
            await asyncio.sleep(60 - now % 60)  # wake at each minute boundary
            if not cron_matches(cron, time.localtime()):
                continue
        await service.create_run({"time": time.time(), "index": index})
        index += 1
        if not cron:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.time()))
