"""Validating a built-in operator's configuration at start-up (models in :mod:`operators.configs`).

Type, range and consistency errors are refused with a :class:`UserError` naming the node
and the configuration key. Keys a model does not know are legitimate (the flow-level
``configuration`` is merged into every node); only a key that looks like a misspelt field
gets a warning with a did-you-mean.
"""

from __future__ import annotations

from typing import TypeVar

from operators.configs import Config, errors
from zflow.errors import Problem, UserError, did_you_mean
from zflow.runtime.api import Context

M = TypeVar("M", bound=Config)


def parse_config(model: type[M], ctx: Context, operator: str) -> M:
    """The node's configuration as ``model``, or a UserError listing every bad key."""
    config, problems = errors(model, ctx.config)
    if problems:
        raise UserError([Problem(f"{operator}: {message}", path=(ctx.node, "configuration", *loc))
                         for loc, message in problems])
    known = set(model.model_fields)
    for key in ctx.config:
        if key not in known:
            hint = did_you_mean(key, known)
            if hint:
                ctx.log.warning("%s: configuration key %r is not used by %s (%s)", ctx.node, key, operator, hint)
    assert config is not None
    return config  # type: ignore[return-value]


def fail(ctx: Context, operator: str, key: str, message: str, hint: str | None = None) -> UserError:
    """A UserError about one configuration key (for checks that need the running node)."""
    return UserError(Problem(f"{operator}: {message}", path=(ctx.node, "configuration", key), hint=hint))
