"""Z-score (or robust median/MAD) anomaly detection on one column of a table."""

import numpy as np


def handle(inputs: dict) -> dict:
    table, column = inputs["table"], inputs["column"]
    if not table:
        return {"anomalies": [], "count": 0, "max_score": 0.0}
    if column not in table[0]:
        raise ValueError(f"column {column!r} not in the table (columns: {sorted(table[0])[:12]})")
    x = np.asarray([float(r[column]) for r in table], dtype=np.float64)
    if inputs.get("method") == "robust":
        center = np.median(x)
        spread = 1.4826 * np.median(np.abs(x - center))
    else:
        center, spread = x.mean(), x.std()
    scores = np.abs(x - center) / spread if spread > 0 else np.zeros_like(x)
    hits = np.flatnonzero(scores > inputs["threshold"])
    anomalies = [{**table[i], "score": float(scores[i])} for i in hits]
    return {"anomalies": anomalies, "count": int(hits.size), "max_score": float(scores.max())}
