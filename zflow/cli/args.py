"""Argument types shared by every command: numbers are checked when parsed, so ``nan``, ``inf``
or a negative count never reaches the code (argparse reports them with exit code 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from zflow.errors import clip, cut


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error never echoes a huge value in full (``--var`` of 2 MB)."""

    def error(self, message: str) -> NoReturn:
        super().error(cut(message, 500))


def _number(text: str, kind: type[int] | type[float], expected: str, ok: Callable[[float], bool]) -> float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {clip(text)}") from None
    if not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {clip(text)}")
    return value


def seconds(text: str) -> float:
    """A duration or timeout: a finite number of seconds greater than 0."""
    return _number(text, float, "a finite number of seconds greater than 0", lambda v: v > 0)


def non_negative(text: str) -> float:
    """A finite number, 0 or more (a speed factor)."""
    return _number(text, float, "a finite number, 0 or more", lambda v: v >= 0)


def positive_int(text: str) -> int:
    """A count of things: a whole number, 1 or more."""
    return int(_number(text, int, "a whole number, 1 or more", lambda v: v >= 1))


def non_negative_int(text: str) -> int:
    """A limit: a whole number, 0 or more."""
    return int(_number(text, int, "a whole number, 0 or more", lambda v: v >= 0))
