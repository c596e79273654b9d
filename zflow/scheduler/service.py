"""The scheduler as a Zenoh queryable (``zflow/ctl/sched/place``), standalone or in a daemon.

It asks every daemon for its live status, drops daemons without a valid bootstrap token
(when a cluster secret is configured), runs the placement core and answers with one decision
per node, including why each other candidate was rejected.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zflow import codec, keyexprs
from zflow.scheduler.model import Demand, Pool
from zflow.scheduler.node_placement import Decision, Placer
from zflow.transport import control as ctl
from zflow.transport.auth import check_claim, new_nonce
from zflow.transport.control_client import ControlClient

if TYPE_CHECKING:
    import zenoh


def pools_from_statuses(statuses: Iterable[dict[str, Any]], secret: bytes | None,
                        trusted: list[str] | None = None, nonce: str = "") -> list[Pool]:
    """Pools of the daemons that answered ``nonce`` with a valid token proof (when ``secret``)."""
    pools = []
    for st in statuses:
        why = check_claim(secret, st["id"], st.get("token"), nonce) if secret is not None else None
        if why is None and trusted is not None and st["id"] not in trusted:
            why = f"daemon {st['id']!r} was not verified when the instance was created"
        for p in st.get("pools", []):
            pool = Pool.from_dict(p)
            pool.ineligible = why
            pools.append(pool)
    return pools


def decide(session: zenoh.Session, request: ctl.PlaceRequest, secret: bytes | None) -> ctl.PlaceAnswer:
    nonce = new_nonce()
    statuses = ControlClient(session).statuses(nonce=nonce)
    pools = pools_from_statuses(statuses, secret, request.trusted, nonce)
    demands = [Demand.from_dict(d) for d in request.demands]
    placer = Placer(pools, request.policy)
    decisions = placer.place_all(demands, explain=request.explain)
    verified = sorted({p.daemon for p in pools if p.ineligible is None})
    return ctl.PlaceAnswer(decisions=[d.to_dict() for d in decisions], daemons=[s["id"] for s in statuses],
                           verified=verified if secret is not None else None)


class SchedulerService:
    """Answers placement queries; each query is worked on its own thread (it queries daemons)."""

    def __init__(self, session: zenoh.Session, secret: bytes | None):
        self.session = session
        self.secret = secret
        self._queryable = session.declare_queryable(keyexprs.sched("place"), self._on_query)

    def _on_query(self, query: Any) -> None:
        threading.Thread(target=self._answer, args=(query,), daemon=True, name="zflow-sched").start()

    def _answer(self, query: Any) -> None:
        try:
            raw = codec.decode(query.payload.to_bytes(), str(query.encoding)) if query.payload else {}
            answer = ctl.ok(decide(self.session, ctl.decode(ctl.PlaceRequest, raw), self.secret))
        except Exception as exc:  # answered, not raised: the caller shows it
            answer = ctl.failed(exc)
        payload, enc = codec.encode(answer)
        with contextlib.suppress(Exception):
            query.reply(keyexprs.sched("place"), payload, encoding=enc)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._queryable.undeclare()


def request_placement(session: zenoh.Session, demands: list[Demand], policy: str = "weighted", explain: bool = False,
                      trusted: list[str] | None = None, secret: bytes | None = None,
                      timeout: float = 10.0) -> tuple[list[Decision], dict[str, Any]]:
    """Ask the scheduler queryable; with none reachable, place here with the same core."""
    request = ctl.PlaceRequest(demands=[d.to_dict() for d in demands], policy=policy, explain=explain,
                               trusted=trusted)
    client = ControlClient(session, timeout)
    answers = client.get_all(keyexprs.sched(request.verb), request.to_wire(), timeout=timeout)
    answer = next((a for a in answers if a.get("ok")), None)
    if answer is None and answers:
        raise ctl.RemoteFailure("scheduler", ctl.problems_of(answers[0]), bool(answers[0].get("user")))
    if answer is None:
        answer = {**ctl.ok(decide(session, request, secret)), "local": True}  # placed by the asker itself
    return [Decision.from_dict(d) for d in answer["decisions"]], answer
