"""Every dependency of the daemon installs on linux aarch64 (a Raspberry Pi 4/5 with 64-bit OS):
binary wheels must exist for Python 3.11.

eclipse-zenoh 1.x publishes ``manylinux_2_28_aarch64`` wheels only (glibc >= 2.28: Raspberry Pi
OS bullseye/bookworm, Ubuntu 20.04+), so the check accepts that tag besides manylinux2014; with
manylinux2014 alone pip silently falls back to eclipse-zenoh 0.10, which is why versions are
pinned here. Needs PyPI; skipped when it is unreachable. CI can run the same as one step:
``pip download --only-binary=:all: --platform manylinux2014_aarch64 --platform
manylinux_2_28_aarch64 --python-version 3.11 -d tmp "eclipse-zenoh>=1.10,<2" pydantic msgpack
numpy pyyaml``.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

DAEMON_DEPS = ["eclipse-zenoh>=1.10,<2", "pydantic>=2.7,<3", "msgpack>=1.0", "numpy>=1.26", "pyyaml>=6.0"]


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_daemon_dependencies_have_aarch64_wheels(tmp_path):
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable (offline)")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--platform", "manylinux2014_aarch64",
         "--platform", "manylinux_2_28_aarch64",
         "--python-version", "3.11", "--disable-pip-version-check", "-q", "-d", str(tmp_path), *DAEMON_DEPS],
        capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheels = sorted(p.name for p in tmp_path.glob("*.whl"))
    assert any(w.startswith("eclipse_zenoh-1.") for w in wheels), wheels
    for name in ("eclipse_zenoh", "pydantic_core", "msgpack", "numpy", "PyYAML"):
        assert any(w.lower().startswith(name.lower()) for w in wheels), (name, wheels)
    assert all("aarch64" in w or w.endswith("-none-any.whl") for w in wheels), wheels
