"""The control plane's messages: one request and one answer type per daemon or scheduler verb.

Both sides use these types: the daemon (``daemon/control_server.py``) and the scheduler
(``scheduler/service.py``) decode each request here before any handler sees it, so a missing or
mistyped field is refused with a :class:`~zflow.errors.Problem` naming it; the client
(``control_client.py``) sends them and reads the answers back.

On the wire a message stays a codec (msgpack) map with the same keys as its fields, so older
peers still understand it. An answer is ``{"ok": true, ...fields}`` or ``{"ok": false, "error":
"<rendered text>", "problems": [...], "user": bool}``: the error travels as the same
:class:`Problem` objects the CLI prints (file, line, path kept), not flattened to a string.

These are stdlib dataclasses, not pydantic models, on purpose: the daemon process never imports
pydantic (``docs/daemons.md``, ``test_daemon_never_imports_heavy_dependencies``); importing it
and defining one model costs about 17 MiB of resident memory, a third more than an idle daemon
(about 45 MiB). Validation therefore happens here, at the edge, with :func:`decode`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from zflow.errors import Problem, RuntimeFailure, UserError, clip

T = TypeVar("T", bound="Message")


@dataclass(frozen=True)
class Message:
    """A control message: built from a wire map with :func:`decode`, sent with :meth:`to_wire`."""

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- requests ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request(Message):
    verb: ClassVar[str]


@dataclass(frozen=True)
class StatusRequest(Request):
    verb = "status"
    nonce: str | None = None  # a token challenge (transport/auth.py)


@dataclass(frozen=True)
class LogsRequest(Request):
    verb = "logs"
    lines: int = 200


@dataclass(frozen=True)
class ListRequest(Request):
    verb = "instances/list"


@dataclass(frozen=True)
class InstanceRequest(Request):
    """A request about one instance, named by flow and instance id."""

    flow: str
    instance: str

    @property
    def key(self) -> str:
        return f"{self.flow}/{self.instance}"


@dataclass(frozen=True)
class GetRequest(InstanceRequest):
    verb = "instances/get"


@dataclass(frozen=True)
class StartRequest(InstanceRequest):
    verb = "instances/start"
    generation: int | None = None  # the generation the sender knows; an older one is refused
    wait_start: bool = True


@dataclass(frozen=True)
class StopRequest(InstanceRequest):
    verb = "instances/stop"


@dataclass(frozen=True)
class DeleteRequest(InstanceRequest):
    verb = "instances/delete"


@dataclass(frozen=True)
class StateRequest(InstanceRequest):
    verb = "instances/state"
    state: str
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadRequest(Request):
    verb = "instances/load"
    record: dict[str, Any]  # an InstanceRecord (daemon/state.py), checked by the daemon's verifier
    wait_start: bool = True


@dataclass(frozen=True)
class UpdateRequest(Request):
    verb = "instances/update"
    record: dict[str, Any]
    barrier: bool = False  # a re-placement: hold the started nodes for the instance's start signal


@dataclass(frozen=True)
class PlaceRequest(Request):
    verb = "place"  # under zflow/ctl/sched/
    demands: list[dict[str, Any]] = field(default_factory=list)  # scheduler.model.Demand maps
    policy: str = "weighted"
    explain: bool = False
    trusted: list[str] | None = None


# ---- answers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Done(Message):
    """An answer with nothing to say but that it was done."""


@dataclass(frozen=True)
class StatusAnswer(Message):
    id: str
    site: str
    arch: str
    labels: dict[str, str]
    cpus: float
    memory: int
    gpus: int
    load: list[float]
    memory_available: int | None
    pools: list[dict[str, Any]]
    running: list[dict[str, str]]
    instances: int
    token: dict[str, Any] | None
    uptime: float
    pid: int


@dataclass(frozen=True)
class LogsAnswer(Message):
    lines: list[str]


@dataclass(frozen=True)
class InstanceSummary(Message):
    flow: str
    instance: str
    state: str
    revision: int
    generation: int
    nodes: list[str]
    daemons: list[str]
    states: dict[str, str]


@dataclass(frozen=True)
class ListAnswer(Message):
    daemon: str
    instances: list[InstanceSummary]


@dataclass(frozen=True)
class GetAnswer(Message):
    daemon: str
    record: dict[str, Any]
    nodes: dict[str, str]


@dataclass(frozen=True)
class NodesAnswer(Message):
    """The nodes of the instance this daemon runs (load, start)."""

    nodes: list[str]


@dataclass(frozen=True)
class DeleteAnswer(Message):
    existed: bool


@dataclass(frozen=True)
class UpdateAnswer(Message):
    adopted: bool
    started: list[str]


@dataclass(frozen=True)
class PlaceAnswer(Message):
    decisions: list[dict[str, Any]]  # scheduler.node_placement.Decision maps
    daemons: list[str]
    verified: list[str] | None  # daemons whose token was checked; None: no cluster secret


DAEMON_VERBS: dict[str, type[Request]] = {r.verb: r for r in (
    StatusRequest, LogsRequest, ListRequest, GetRequest, LoadRequest, StartRequest, StopRequest,
    DeleteRequest, StateRequest, UpdateRequest)}


# ---- decoding at the edge ------------------------------------------------------------------------
_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
          dict: "a map", type(None): "null"}


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args)
    base = typing.get_origin(hint) or hint
    return _WORDS.get(base, "a map" if isinstance(base, type) and issubclass(base, Message) else str(base))


def _problems(value: Any, hint: Any, path: tuple[str | int, ...]) -> list[Problem]:
    """What is wrong with ``value`` for the type ``hint`` (the few shapes messages use)."""
    if hint is Any:
        return []
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        found = [_problems(value, h, path) for h in typing.get_args(hint) if value is not None or h is type(None)]
        if any(not f for f in found):
            return []
        deeper = [f for f in found if f and f[0].path != path]  # e.g. a list with one bad item
        return deeper[0] if deeper else [Problem(f"expected {_describe(hint)}, found {clip(value)}", path=path)]
    if hint is type(None):
        return [] if value is None else [Problem(f"expected null, found {clip(value)}", path=path)]
    if origin is list:
        if not isinstance(value, list | tuple):
            return [Problem(f"expected a list, found {clip(value)}", path=path)]
        (item,) = typing.get_args(hint)
        return [p for i, v in enumerate(value) for p in _problems(v, item, (*path, i))]
    if origin is dict:
        if not isinstance(value, Mapping):
            return [Problem(f"expected a map, found {clip(value)}", path=path)]
        _, item = typing.get_args(hint)
        return [p for k, v in value.items() for p in _problems(v, item, (*path, str(k)))]
    if isinstance(hint, type) and issubclass(hint, Message):
        return _fields_problems(hint, value, path)
    ok = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(hint, (hint,))
    if (isinstance(value, bool) and hint is not bool) or not isinstance(value, ok):
        return [Problem(f"expected {_describe(hint)}, found {clip(value)}", path=path)]
    return []


def _fields_problems(cls: type[Message], data: Any, path: tuple[str | int, ...]) -> list[Problem]:
    if not isinstance(data, Mapping):
        return [Problem(f"expected a map, found {clip(data)}", path=path)]
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in data:
            out += _problems(data[f.name], hints[f.name], (*path, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            out.append(Problem(f"missing: expected {_describe(hints[f.name])}", path=(*path, f.name)))
    return out


def _build(cls: type[T], data: Mapping[str, Any]) -> T:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        if typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint)
            if isinstance(item, type) and issubclass(item, Message):
                value = [_build(item, v) for v in value]
        kwargs[f.name] = value
    return cls(**kwargs)


def decode(cls: type[T], data: Any) -> T:
    """``data`` (a decoded wire map) as a ``cls``; unknown keys are ignored (newer peers may send
    more), a missing or mistyped field raises :class:`UserError` with its path, the verb first
    (``instances/load.record: missing: expected a map``)."""
    data = {} if data is None else data
    problems = _fields_problems(cls, data, (getattr(cls, "verb", cls.__name__),))
    if problems:
        raise UserError(problems)
    return _build(cls, data)


# ---- answers on the wire -------------------------------------------------------------------------
def ok(answer: Message) -> dict[str, Any]:
    return {"ok": True, **answer.to_wire()}


def failed(exc: BaseException) -> dict[str, Any]:
    """An error answer: the text as the CLI would print it, and the problems it is made of."""
    if isinstance(exc, UserError):
        problems = exc.problems
    else:
        problems = [Problem(str(exc) if isinstance(exc, RuntimeFailure) else f"{type(exc).__name__}: {exc}")]
    return {"ok": False, "error": "\n".join(p.render() for p in problems),
            "problems": [dataclasses.asdict(p) for p in problems], "user": isinstance(exc, UserError)}


class RemoteFailure(RuntimeFailure):
    """A daemon or the scheduler refused or failed a request. ``problems`` are the ones it
    raised (location kept); ``user`` tells bad input from a failure while running."""

    def __init__(self, who: str, problems: list[Problem], user: bool):
        self.who = who
        self.problems = problems
        self.user = user
        super().__init__(f"{who}: " + "\n".join(p.render() for p in problems))


def problems_of(answer: Mapping[str, Any]) -> list[Problem]:
    """The problems of an error answer (an older peer sends only the text)."""
    out = []
    for p in answer.get("problems") or []:
        with_path = {**p, "path": tuple(p.get("path") or ())}
        try:
            out.append(Problem(**with_path))
        except TypeError:
            continue
    return out or [Problem(str(answer.get("error", "request failed")))]


def raise_for(who: str, answer: Any) -> dict[str, Any]:
    """``answer`` if it says ok, else :class:`RemoteFailure` with its problems."""
    if not isinstance(answer, Mapping):
        raise RemoteFailure(who, [Problem(f"answered {clip(answer)}, expected a map")], False)
    if not answer.get("ok", False):
        raise RemoteFailure(who, problems_of(answer), bool(answer.get("user")))
    return dict(answer)
