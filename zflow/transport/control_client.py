"""Talking to daemons over Zenoh queries: the only control channel there is.

Requests and replies are codec (msgpack) maps; a reply is ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``, turned here into :class:`RuntimeFailure`.
"""

from __future__ import annotations

from typing import Any

import zenoh

from zflow import codec, keyexprs
from zflow.errors import RuntimeFailure, UserError, did_you_mean

DEFAULT_TIMEOUT = 10.0


def _payload(value: Any) -> tuple[bytes, str]:
    return codec.encode(value)


def _decode(sample: Any) -> Any:
    return codec.decode(sample.payload.to_bytes(), str(sample.encoding))


class ControlClient:
    """Queries daemons (and the scheduler) from any session: CLI, scheduler or another daemon."""

    def __init__(self, session: Any, timeout: float = DEFAULT_TIMEOUT):
        self.session = session
        self.timeout = timeout

    def get_all(self, key: str, request: Any = None, timeout: float | None = None) -> list[Any]:
        """Every successful reply to a query (replies with ok=false are dropped). No consolidation:
        by default Zenoh keeps one reply per key, and replicas all answer with the same key."""
        payload, enc = _payload(request if request is not None else {})
        out = []
        for reply in self.session.get(key, payload=payload, encoding=enc,
                                      target=zenoh.QueryTarget.ALL,
                                      consolidation=zenoh.ConsolidationMode.NONE,
                                      timeout=timeout or self.timeout):
            if reply.ok is not None:
                out.append(_decode(reply.ok))
        return out

    def call(self, daemon: str, verb: str, request: Any = None, timeout: float | None = None) -> dict[str, Any]:
        """One daemon's answer; a missing daemon or an error reply raises RuntimeFailure."""
        payload, enc = _payload(request if request is not None else {})
        key = keyexprs.daemon_ctl(daemon, *verb.split("/"))
        for reply in self.session.get(key, payload=payload, encoding=enc, timeout=timeout or self.timeout):
            if reply.ok is None:
                raise RuntimeFailure(f"daemon {daemon!r}: {reply.err.payload.to_string()}")
            answer = _decode(reply.ok)
            if not answer.get("ok", False):
                raise RuntimeFailure(f"daemon {daemon!r}: {answer.get('error', 'request failed')}")
            return answer
        raise RuntimeFailure(f"daemon {daemon!r} did not answer {verb!r} (not running or not reachable)")

    def alive(self, timeout: float = 2.0) -> list[str]:
        """Ids of daemons whose liveliness token is declared right now."""
        ids = set()
        for reply in self.session.liveliness().get(keyexprs.daemon_alive("*"), timeout=timeout):
            if reply.ok is not None:
                daemon = keyexprs.parse_daemon_alive(str(reply.ok.key_expr))
                if daemon is not None:
                    ids.add(daemon)
        return sorted(ids)

    def statuses(self, timeout: float = 3.0, nonce: str | None = None) -> list[dict[str, Any]]:
        """Status of every daemon that answers, sorted by id (``nonce``: a token challenge)."""
        request = {"nonce": nonce} if nonce else None
        out = [s for s in self.get_all(keyexprs.daemon_ctl("*", "status"), request, timeout=timeout)
               if s.get("ok")]
        return sorted(out, key=lambda s: s["id"])

    def status(self, daemon: str) -> dict[str, Any]:
        try:
            return self.call(daemon, "status", timeout=3.0)
        except RuntimeFailure:
            known = self.alive()
            hint = did_you_mean(daemon, known)
            raise UserError(f"no daemon {daemon!r} is reachable (alive: {', '.join(known) or 'none'})"
                            + (f"; {hint}" if hint else "")) from None
