"""Bootstrap tokens: a daemon is given work only if it shows a token bound to its id.

``zft1.<daemon id>.<hex HMAC-SHA256(secret, "zflow-daemon:" + id)>``. The cluster secret is
held by whoever deploys (instance and scheduler side), read from ``--secret-file`` or
``ZFLOW_SECRET``; daemons only hold their own token. With no secret configured, the deploying
side runs open (a development setup) and says so.

A token never leaves its daemon: a status reply carries a :func:`token_claim` (whom the token
names, a fingerprint and, when the asker sent a fresh nonce, an HMAC proof keyed by the token),
which the secret holder checks with :func:`check_claim`. Whoever reads a status (another daemon,
an observer) learns nothing that lets it pose as that daemon, and an old proof does not answer
a new nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from zflow import settings
from zflow.errors import UserError

PREFIX = "zft1"


def _mac(secret: bytes, daemon_id: str) -> str:
    return hmac.new(secret, f"zflow-daemon:{daemon_id}".encode(), hashlib.sha256).hexdigest()


def issue_token(secret: bytes, daemon_id: str) -> str:
    return f"{PREFIX}.{daemon_id}.{_mac(secret, daemon_id)}"


def new_nonce() -> str:
    """A fresh challenge for :func:`token_claim` (one per status round)."""
    return secrets.token_hex(16)


def fingerprint(token: str) -> str:
    """A short digest that tells tokens apart without revealing them."""
    return hashlib.sha256(token.strip().encode()).hexdigest()[:16]


def _proof(token: str, nonce: str) -> str:
    return hmac.new(token.strip().encode(), f"zflow-proof:{nonce}".encode(), hashlib.sha256).hexdigest()


def token_claim(token: str | None, nonce: str | None = None) -> dict[str, object] | None:
    """What a daemon shows of its token: never the token itself."""
    if not token:
        return None
    parts = token.strip().split(".")
    if len(parts) < 3 or parts[0] != PREFIX:
        return {"malformed": True}
    claim: dict[str, object] = {"for": ".".join(parts[1:-1]), "fingerprint": fingerprint(token)}
    if nonce:
        claim["proof"] = _proof(token, nonce)
    return claim


def check_claim(secret: bytes, daemon_id: str, claim: dict[str, object] | None, nonce: str) -> str | None:
    """None when the claim proves a valid token for ``daemon_id`` on ``nonce``, else a reason."""
    if not claim:
        return f"daemon {daemon_id!r} has no bootstrap token (start it with --token or token_file)"
    if claim.get("malformed"):
        return (f"daemon {daemon_id!r} has a malformed bootstrap token: expected "
                f"'{PREFIX}.<daemon id>.<signature>' (make one with `zflow daemon token`)")
    if claim.get("for") != daemon_id:
        return f"daemon {daemon_id!r} shows a bootstrap token issued for daemon {claim.get('for')!r}"
    expected = _proof(issue_token(secret, daemon_id), nonce)
    if not hmac.compare_digest(str(claim.get("proof", "")), expected):
        return f"daemon {daemon_id!r} has a bootstrap token that does not match the cluster secret"
    return None


def check_token(secret: bytes, daemon_id: str, token: str | None) -> str | None:
    """None when ``token`` (held here) is valid for ``daemon_id``, else a reason a person can read."""
    nonce = new_nonce()
    return check_claim(secret, daemon_id, token_claim(token, nonce), nonce)


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
    env = settings.secret()
    return env.encode() if env else None
