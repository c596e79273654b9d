"""``zflow check | graph | schema``: the descriptor side of the CLI."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # filled in by the descriptor work
    del sub
