"""Shared fixtures: a real embedded Zenoh router on a free loopback port, sessions closed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def spawn_python(args: list[str], ready: str, env: dict[str, str] | None = None,
                 ) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run ``python ARGS`` from this checkout until its first stdout line, which must contain
    ``ready``; yields (process, that line). The process is always terminated (then killed) and
    its pipes closed, even when the test fails."""
    if env is None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if ready not in line:
            proc.kill()
            raise AssertionError(f"{args} did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
        yield proc, line.strip()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def spawn() -> Callable[..., contextlib.AbstractContextManager[tuple[subprocess.Popen, str]]]:
    """``with spawn(["-m", "pkg.mod", ...], "ready text") as (proc, line):`` - a real child process."""
    return spawn_python
