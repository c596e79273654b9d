"""A node's small checkpoint, kept by the daemons' replicated storage (``zflow/daemon/replica.py``).

Only under a daemon (``ZFLOW_DAEMON_ID`` set): a flow run by ``zflow run`` has no storage
to keep it, so ``load`` gives None there without asking. Values are codec maps; several
replicas may answer a ``load``, and ``newest`` picks among their copies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import zenoh

from zflow import codec, keyexprs
from zflow.daemon.identity import DAEMON_ENV
from zflow.runtime.api import Context

LOAD_TIMEOUT = 3.0


class Checkpoint:
    def __init__(self, ctx: Context):
        self.session = ctx.session
        self.key = keyexprs.checkpoint(ctx.flow, ctx.instance, ctx.node)
        self.enabled = self.session is not None and bool(os.environ.get(DAEMON_ENV))

    def load(self, newest: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> dict[str, Any] | None:
        """The checkpoint, or None when there is none (first start, or no daemon keeps one)."""
        if not self.enabled:
            return None
        copies = []
        for reply in self.session.get(self.key, target=zenoh.QueryTarget.ALL, timeout=LOAD_TIMEOUT):
            if reply.ok is not None:
                value = codec.decode(reply.ok.payload.to_bytes(), str(reply.ok.encoding))
                if isinstance(value, dict):
                    copies.append(value)
        return newest(copies) if copies else None

    def save(self, value: dict[str, Any]) -> None:
        if self.enabled:
            payload, enc = codec.encode(value)
            self.session.put(self.key, payload, encoding=zenoh.Encoding(enc))
