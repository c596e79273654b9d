"""Bootstrap tokens: a daemon is given work only if it shows a token bound to its id.

``zft1.<daemon id>.<hex HMAC-SHA256(secret, "zflow-daemon:" + id)>``. The cluster secret is
held by whoever deploys (instance and scheduler side), read from ``--secret-file`` or
``ZFLOW_SECRET``; daemons only hold their own token. With no secret configured, the deploying
side runs open (a development setup) and says so.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from zflow.errors import UserError

PREFIX = "zft1"


def _mac(secret: bytes, daemon_id: str) -> str:
    return hmac.new(secret, f"zflow-daemon:{daemon_id}".encode(), hashlib.sha256).hexdigest()


def issue_token(secret: bytes, daemon_id: str) -> str:
    return f"{PREFIX}.{daemon_id}.{_mac(secret, daemon_id)}"


def check_token(secret: bytes, daemon_id: str, token: str | None) -> str | None:
    """None when valid, else a reason a person can read."""
    if not token:
        return f"daemon {daemon_id!r} has no bootstrap token (start it with --token or token_file)"
    parts = token.strip().split(".")
    if len(parts) < 3 or parts[0] != PREFIX:
        return (f"daemon {daemon_id!r} has a malformed bootstrap token: expected "
                f"'{PREFIX}.<daemon id>.<signature>' (make one with `zflow daemon token`)")
    token_id, mac = ".".join(parts[1:-1]), parts[-1]
    if token_id != daemon_id:
        return f"daemon {daemon_id!r} shows a bootstrap token issued for daemon {token_id!r}"
    if not hmac.compare_digest(mac, _mac(secret, daemon_id)):
        return f"daemon {daemon_id!r} has a bootstrap token that does not match the cluster secret"
    return None


def load_secret(path: str | None = None) -> bytes | None:
    """The cluster secret from a file or ``ZFLOW_SECRET``; None means open (no token checks)."""
    if path:
        p = Path(path).expanduser()
        try:
            data = p.read_bytes().strip()
        except OSError as exc:
            raise UserError(f"{path}: cannot read the cluster secret: {exc.strerror}") from None
        if len(data) < 16:
            raise UserError(f"{path}: cluster secret is too short ({len(data)} bytes, need at least 16)")
        return data
    env = os.environ.get("ZFLOW_SECRET")
    return env.encode() if env else None
