"""Rows and column batches: the two shapes tabular data takes between operators.

A *row* is a ``dict`` of scalars. A *batch* is a ``dict`` of equal-length columns (numpy
arrays for numbers, lists for text) — what replays emit with ``batch: N``: one message per N
rows, numeric columns decoded zero-copy by the codec. A batch says so in its metadata
(``{"batch": rows}``, carried in the Zenoh attachment), so a row that merely holds an
array (an image, a spectrum) is never mistaken for one. Any node can send a batch with
``ctx.put(port, columns, batch_metadata(n))``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

_HOUR_24 = re.compile(r"(^|[ T])(24):00(:00)?(\.0*)?$")


BATCH = "batch"  # metadata key: this message is a column batch of that many rows


def batch_metadata(n: int) -> dict[str, Any]:
    return {BATCH: int(n)}


def is_batch(value: Any, metadata: dict[str, Any] | None) -> bool:
    return isinstance(value, dict) and bool(metadata) and bool(metadata.get(BATCH))  # type: ignore[union-attr]


def rows(value: Any, metadata: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Iterate the rows of a batch, or yield a single row as is."""
    if not is_batch(value, metadata):
        yield value
        return
    names = list(value)
    cols = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in value.values()]
    for values in zip(*cols, strict=True):
        yield dict(zip(names, values, strict=True))


def metadata_of(ctx: Any) -> dict[str, Any] | None:
    """The metadata of the message a node is handling (None outside the runtime)."""
    message = getattr(ctx, "message", None)
    return None if message is None else message.metadata


def columns(batch_rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rows to a column batch: numeric columns become numpy arrays, others stay lists."""
    names: dict[str, None] = {}
    for row in batch_rows:
        names.update(dict.fromkeys(row))
    out: dict[str, Any] = {}
    for name in names:
        values = [row.get(name) for row in batch_rows]
        out[name] = to_array(values)
    return out


def to_array(values: list[Any]) -> Any:
    """A numpy array when every value is numeric (None -> NaN), else the list itself."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.asarray(values, dtype=bool)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if len(present) == len(values):
            return np.asarray(values, dtype=np.int64)
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return values


def parse_time(value: Any, fmt: str | None = None) -> float:
    """Event time in seconds: numbers as they are, strings by ``fmt`` (strptime) or ISO 8601.

    Naive times are taken as UTC. ``24:00`` (used by TMY3 and other hourly formats for the
    end of a day) is read as 00:00 of the next day.
    """
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    extra = timedelta(0)
    end_of_day = _HOUR_24.search(text)
    if end_of_day:
        text = text[: end_of_day.start(2)] + "00" + text[end_of_day.end(2):]
        extra = timedelta(days=1)
    stamp = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp + extra).timestamp()


def jsonable(obj: Any) -> Any:
    """``json.dumps`` default: numpy scalars and arrays, bytes, sets."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return str(obj)
