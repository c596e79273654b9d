"""Every ``ZFLOW_*`` environment variable, named and read in one place.

A bottom floor (imports nothing of zflow): any package may read its settings here. Values are
read when asked, not at import, so a test or a parent process that sets a variable is seen; the
names are constants for the code that *writes* a child's environment.
"""

from __future__ import annotations

import os
from pathlib import Path

PARENT_PID = "ZFLOW_PARENT_PID"  # set by the supervisor: a child exits when its parent is gone
CONNECT = "ZFLOW_CONNECT"  # comma-separated Zenoh endpoints, for code that opens its own session
DAEMON_ID = "ZFLOW_DAEMON_ID"  # which daemon a node host runs under (unset under `zflow run`)
DAEMON_SITE = "ZFLOW_DAEMON_SITE"
LOG_LEVEL = "ZFLOW_LOG_LEVEL"
TEARDOWN_TIMEOUT = "ZFLOW_TEARDOWN_TIMEOUT"
EOS_UNSEEN_GRACE = "ZFLOW_EOS_UNSEEN_GRACE"
SECRET = "ZFLOW_SECRET"
TOKEN = "ZFLOW_TOKEN"
DEPLOYER_KEY = "ZFLOW_DEPLOYER_KEY"
ACTIONS_PATH = "ZFLOW_ACTIONS_PATH"
DEMO_FLOW = "ZFLOW_DEMO_FLOW"
STATE_DIR = "ZFLOW_STATE_DIR"  # where workflow runs and deployments are kept
# set by the supervisor for each child: a directory kept across its restarts, and how many there were
CHILD_STATE_DIR = "ZFLOW_CHILD_STATE_DIR"
RESTARTS = "ZFLOW_RESTARTS"
GF_KERNEL = "ZFLOW_GF_KERNEL"
DEBIAN_MIRROR = "ZFLOW_DEBIAN_MIRROR"  # zflow build: the Debian mirror (default: the one apt uses)
REGISTRY_USERNAME = "ZFLOW_REGISTRY_USERNAME"  # zflow build --push: registry credentials
REGISTRY_PASSWORD = "ZFLOW_REGISTRY_PASSWORD"
BUILD_CACHE = "ZFLOW_BUILD_CACHE"  # zflow build: the content-addressed cache directory

DEFAULT_ROUTER = "tcp/127.0.0.1:7447"


def _get(name: str) -> str | None:
    return os.environ.get(name) or None


def connect() -> list[str]:
    """``$ZFLOW_CONNECT`` as endpoints; empty when unset."""
    return [e for e in os.environ.get(CONNECT, "").split(",") if e]


def connect_or_default() -> list[str]:
    """Where a client talks when not told: ``$ZFLOW_CONNECT``, else the default local router."""
    return connect() or [DEFAULT_ROUTER]


def parent_pid() -> int:
    return int(os.environ.get(PARENT_PID, "0") or 0)


def daemon_id() -> str | None:
    return _get(DAEMON_ID)


def daemon_site() -> str | None:
    return _get(DAEMON_SITE)


def log_level(default: str = "INFO") -> str:
    return os.environ.get(LOG_LEVEL, default)


def teardown_timeout_s() -> float:
    return float(os.environ.get(TEARDOWN_TIMEOUT, "5"))


def eos_unseen_grace_s() -> float:
    return float(os.environ.get(EOS_UNSEEN_GRACE, "10"))


def secret() -> str | None:
    return _get(SECRET)


def token() -> str | None:
    return _get(TOKEN)


def deployer_key() -> str | None:
    return _get(DEPLOYER_KEY)


def actions_path() -> list[Path]:
    return [Path(p) for p in os.environ.get(ACTIONS_PATH, "").split(os.pathsep) if p]


def demo_flow() -> str | None:
    return _get(DEMO_FLOW)


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR) or Path.home() / ".local" / "state" / "zflow")


def child_state_dir() -> str:
    """The supervisor's directory for this child, kept across its restarts; "" when unsupervised."""
    return os.environ.get(CHILD_STATE_DIR, "")


def restarts() -> int:
    """How many times the supervisor restarted this child (0 on its first start)."""
    return int(os.environ.get(RESTARTS, "0") or 0)


def gf_kernel() -> str:
    return os.environ.get(GF_KERNEL, "").strip().lower()


def debian_mirror() -> str | None:
    return _get(DEBIAN_MIRROR)


def registry_credentials() -> tuple[str | None, str | None]:
    """``$ZFLOW_REGISTRY_USERNAME`` and ``$ZFLOW_REGISTRY_PASSWORD`` (an empty password is one)."""
    return _get(REGISTRY_USERNAME), os.environ.get(REGISTRY_PASSWORD)


def build_cache() -> Path | None:
    value = _get(BUILD_CACHE)
    return Path(value) if value else None
