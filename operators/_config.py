"""Validating a built-in operator's configuration with a pydantic model.

A node's configuration is merged with the flow-level ``configuration`` block, so keys that a
model does not know are legitimate (they belong to other nodes); only a key that looks like
a misspelt field gets a warning with a did-you-mean. Type and range errors are refused with
a :class:`UserError` naming the node and the configuration key.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from zflow.errors import Problem, UserError, did_you_mean
from zflow.runtime.api import Context

M = TypeVar("M", bound=BaseModel)


class Config(BaseModel):
    """Base of built-in operator configurations: unknown keys ignored, values validated."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _message(err: Any) -> str:
    if err.get("type") == "missing":
        return "required configuration key is missing"
    msg = str(err.get("msg", "invalid value"))
    msg = msg[0].lower() + msg[1:] if msg else msg
    if "input" in err and err.get("type") != "missing":
        return f"{msg} (got {err['input']!r})"
    return msg


def parse_config(model: type[M], ctx: Context, operator: str) -> M:
    """The node's configuration as ``model``, or a UserError listing every bad key."""
    try:
        config = model.model_validate(ctx.config)
    except ValidationError as exc:
        problems = [
            Problem(
                f"{operator}: {_message(err)}",
                path=(ctx.node, "configuration", *[p for p in err["loc"] if not str(p).startswith("function-")]),
            )
            for err in exc.errors()
        ]
        raise UserError(problems) from None
    known = set(model.model_fields)
    for key in ctx.config:
        if key not in known:
            hint = did_you_mean(key, known)
            if hint:
                ctx.log.warning("%s: configuration key %r is not used by %s (%s)", ctx.node, key, operator, hint)
    return config


def fail(ctx: Context, operator: str, key: str, message: str, hint: str | None = None) -> UserError:
    """A UserError about one configuration key (for checks a model cannot express)."""
    return UserError(Problem(f"{operator}: {message}", path=(ctx.node, "configuration", key), hint=hint))
