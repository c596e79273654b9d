"""``zflow run | demo``: running flows on the embedded router."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # filled in by the runtime work
    del sub
