"""Talking to daemons over Zenoh queries: the only control channel there is.

Requests and replies are the typed messages of :mod:`zflow.transport.control`, sent as codec
(msgpack) maps; an error reply is turned here into :class:`~zflow.transport.control.RemoteFailure`
(a :class:`RuntimeFailure` that keeps the daemon's :class:`~zflow.errors.Problem` objects).
"""

from __future__ import annotations

from typing import Any

import zenoh

from zflow import codec, keyexprs
from zflow.errors import Problem, RuntimeFailure, UserError, did_you_mean
from zflow.transport import control as ctl

DEFAULT_TIMEOUT = 10.0


def _payload(value: Any) -> tuple[bytes, str]:
    return codec.encode(value)


def _decode(sample: Any) -> Any:
    return codec.decode(sample.payload.to_bytes(), str(sample.encoding))


class ControlClient:
    """Queries daemons (and the scheduler) from any session: CLI, scheduler or another daemon."""

    def __init__(self, session: zenoh.Session, timeout: float = DEFAULT_TIMEOUT):
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

    def ask_all(self, request: ctl.Request, timeout: float | None = None) -> list[Any]:
        """Every daemon's successful answer to a typed request (see :meth:`get_all`)."""
        key = keyexprs.daemon_ctl("*", *request.verb.split("/"))
        return self.get_all(key, request.to_wire(), timeout)

    def ask(self, daemon: str, request: ctl.Request, timeout: float | None = None) -> dict[str, Any]:
        """One daemon's answer to a typed request (see :meth:`call`)."""
        return self.call(daemon, request.verb, request.to_wire(), timeout)

    def call(self, daemon: str, verb: str, request: Any = None, timeout: float | None = None) -> dict[str, Any]:
        """One daemon's answer; a missing daemon raises RuntimeFailure, an error reply
        :class:`~zflow.transport.control.RemoteFailure` with the daemon's problems."""
        payload, enc = _payload(request if request is not None else {})
        key = keyexprs.daemon_ctl(daemon, *verb.split("/"))
        who = f"daemon {daemon!r}"
        for reply in self.session.get(key, payload=payload, encoding=enc, timeout=timeout or self.timeout):
            if reply.ok is None:
                said = reply.err.payload.to_string() if reply.err is not None else "no answer"
                raise ctl.RemoteFailure(who, [Problem(said)], False)
            return ctl.raise_for(who, _decode(reply.ok))
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
        request = ctl.StatusRequest(nonce=nonce).to_wire() if nonce else None
        out = [s for s in self.get_all(keyexprs.daemon_ctl("*", ctl.StatusRequest.verb), request, timeout=timeout)
               if s.get("ok")]
        return sorted(out, key=lambda s: s["id"])

    def status(self, daemon: str) -> dict[str, Any]:
        try:
            return self.ask(daemon, ctl.StatusRequest(), timeout=3.0)
        except RuntimeFailure:
            known = self.alive()
            hint = did_you_mean(daemon, known)
            raise UserError(f"no daemon {daemon!r} is reachable (alive: {', '.join(known) or 'none'})"
                            + (f"; {hint}" if hint else "")) from None
