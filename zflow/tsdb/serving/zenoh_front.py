"""The Zenoh storage front of a dataset.

Subscribes on ``zflow/tsdb/{dataset}/**``: a put on ``.../ingest`` carries rows (msgpack or
JSON: a dict of columns or a list of row dicts), a put on ``.../flush`` seals buffered rows.
Answers gets on ``.../stats`` (JSON) and
``.../query?filter=...&cols=...&time=a..b&limit=N&format=msgpack|json`` with
``{"columns": {name: array}, "report": {...}}`` (msgpack numpy columns via :mod:`zflow.codec`,
or JSON lists); a bad selector gets an error reply that says what is wrong.

Zenoh callbacks only enqueue; one worker thread applies ingests and answers queries in
arrival order (a get after a put from the same session sees the put's rows once flushed).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

import numpy as np

from zflow import codec, keyexprs
from zflow.errors import RuntimeFailure, UserError
from zflow.tsdb.dataset import Dataset

log = logging.getLogger(__name__)


def _sample_value(sample: Any) -> Any:
    enc = str(sample.encoding)
    payload = sample.payload.to_bytes()
    if enc.startswith(codec.OCTET) or enc.startswith("zenoh/bytes"):
        try:
            return codec.decode(payload, codec.MSGPACK)
        except Exception:
            return json.loads(payload)
    return codec.decode(payload, enc)


class Front:
    def __init__(self, ds: Dataset, session: Any, tick: float = 0.5):
        self.ds = ds
        self.session = session
        self.tick = tick
        self.jobs: queue.Queue = queue.Queue()
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self._sub = None
        self._qbl = None
        self._stats = None
        self._thread = threading.Thread(target=self._loop, name=f"tsdb-front-{ds.name}", daemon=True)

    def start(self) -> Front:
        name = self.ds.name
        self._sub = self.session.declare_subscriber(
            keyexprs.tsdb(name, "**"), lambda s: self.jobs.put(("put", s)))
        self._qbl = self.session.declare_queryable(
            keyexprs.tsdb(name, "query"), lambda q: self.jobs.put(("query", q)))
        self._stats = self.session.declare_queryable(
            keyexprs.tsdb(name, "stats"), lambda q: self.jobs.put(("stats", q)))
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for ent in (self._sub, self._qbl, self._stats):
            if ent is not None:
                try:
                    ent.undeclare()
                except Exception:
                    pass
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.ds.flush()
        except Exception:
            pass

    def __enter__(self) -> Front:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                kind, item = self.jobs.get(timeout=self.tick)
            except queue.Empty:
                self.ds.ingestor.tick()
                continue
            try:
                if kind == "put":
                    self._on_put(item)
                else:
                    try:
                        if kind == "stats":
                            item.reply(item.key_expr, json.dumps(self.ds.stats()).encode(), encoding=codec.JSON)
                        else:
                            self._on_query(item)
                    finally:
                        item.drop()  # finalise now: the getter's reply stream ends here
            except Exception as exc:  # keep serving; the error goes to the log
                text = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
                self.errors.append(text)
                log.warning("tsdb front %s: %s", self.ds.name, text)
            del item
            self.ds.ingestor.tick()

    def _on_put(self, sample: Any) -> None:
        key = str(sample.key_expr)
        last = key.rsplit("/", 1)[-1]
        if last == "flush":
            self.ds.flush()
            return
        if last != "ingest":
            return
        value = _sample_value(sample)
        if isinstance(value, list):
            self.ds.ingest(value)  # row dicts, every value checked like a file's
        elif isinstance(value, dict):
            self.ds.ingest({k: np.asarray(v) for k, v in value.items()})
        else:
            raise UserError("ingest payload must be a dict of columns or a list of rows")

    def _on_query(self, query: Any) -> None:
        params = str(query.selector.parameters)
        try:
            from zflow.tsdb.query.selector import parse_selector

            q = parse_selector(params, self.ds.schema)
            res = self.ds.query(q)
        except (UserError, RuntimeFailure) as exc:
            text = exc.render() if isinstance(exc, UserError) else f"error: {exc}"
            query.reply_err(text.encode(), encoding=codec.TEXT)
            return
        except Exception as exc:
            query.reply_err(f"error: {type(exc).__name__}: {exc}".encode(), encoding=codec.TEXT)
            raise
        if q.format == "json":
            body = json.dumps(res.to_json()).encode()
            query.reply(query.key_expr, body, encoding=codec.JSON)
        else:
            body, ctype = codec.encode({"columns": res.columns, "report": res.report})
            query.reply(query.key_expr, body, encoding=ctype)
