"""Shared fixtures: a real embedded Zenoh router on a free loopback port, sessions closed."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def router() -> Iterator[object]:
    from zflow.transport import EmbeddedRouter

    with EmbeddedRouter() as r:
        yield r


@pytest.fixture
def zsession(router) -> Iterator[object]:
    from zflow.transport import open_session

    with open_session(router.client_options()) as s:
        yield s


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running ``python -m zflow`` from this checkout in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def zflow_cmd() -> list[str]:
    return [sys.executable, "-m", "zflow"]


@pytest.fixture
def shared_data() -> Path:
    """Real data: ``$ZFLOW_SHARED_DATA``, ``../shared/data`` next to the checkout, or /work/shared/data."""
    candidates = [os.environ.get("ZFLOW_SHARED_DATA"), SHARED_DATA, "/work/shared/data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    pytest.skip("shared data (../shared/data) is not present")
