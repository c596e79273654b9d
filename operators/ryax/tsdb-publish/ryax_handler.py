"""Publish table rows to the time-series store's ingest key over Zenoh."""

import atexit

from zflow import codec, keyexprs, settings
from zflow.transport.session import SessionOptions, open_session

_sessions: dict = {}


def _session(connect: str):
    if connect not in _sessions:
        cm = open_session(SessionOptions(mode="client", connect=[c for c in connect.split(",") if c]))
        _sessions[connect] = (cm, cm.__enter__())
        atexit.register(cm.__exit__, None, None, None)
    return _sessions[connect][1]


def handle(inputs: dict) -> dict:
    session = _session(inputs.get("connect") or ",".join(settings.connect()))
    rows = inputs["rows"]
    if rows:
        payload, ctype = codec.encode(rows)
        session.put(keyexprs.tsdb(inputs["dataset"], "ingest"), payload, encoding=ctype)
    print(f"published {len(rows)} rows to dataset {inputs['dataset']}")
    return {}
