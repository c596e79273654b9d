"""Read a CSV file (or one window of it) into a table of rows."""

import csv
import itertools


def _value(text: str):
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def handle(inputs: dict) -> dict:
    window = inputs.get("window") or 0
    start = (inputs.get("index") or 0) * window if window else 0
    keep = [c.strip() for c in (inputs.get("columns") or "").split(",") if c.strip()]
    with open(inputs["file"], newline="", encoding="utf-8", errors="replace") as f:
        for _ in range(inputs.get("skip_lines") or 0):
            next(f, None)
        reader = csv.DictReader(f)
        missing = [c for c in keep if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"columns not in the file: {missing}; file has {reader.fieldnames[:12]}...")
        rows_iter = itertools.islice(reader, start, start + window if window else None)
        table = [{k: _value(v) for k, v in row.items() if not keep or k in keep} for row in rows_iter]
    return {"table": table, "rows": len(table)}
