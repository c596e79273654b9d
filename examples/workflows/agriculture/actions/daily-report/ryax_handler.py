"""Write a day's weather readings and flagged hours as a report folder."""

import csv
import json
import tempfile
from pathlib import Path


def handle(inputs: dict) -> dict:
    rows = inputs["table"]
    day = str(rows[0]["date"]) if rows else "no-data"
    folder = Path(tempfile.mkdtemp(prefix="report-")) / day.replace("/", "-")
    folder.mkdir()
    if rows:
        with (folder / "readings.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    temps = [float(r["temp_c"]) for r in rows]
    summary = {"day": day, "hours": len(rows), "flagged": len(inputs["flagged"]),
               "min_c": min(temps, default=None), "max_c": max(temps, default=None)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"report {day}: {summary}")
    return {"folder": str(folder), "day": day}
