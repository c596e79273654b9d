"""Deployer keys: a daemon runs only what a deployer it trusts has signed.

The deploying side signs each instance record (flow, instance id and the whole graph, whose
shipped nodes name their code bundles by sha256) with an Ed25519 key; a daemon verifies the
signature against its ``trusted_deployers`` before it writes, fetches or runs anything, and
refuses otherwise. Transport security (mTLS, ACL) decides who may talk; this decides whose code
runs, so a stolen daemon certificate or a local process is not enough to run code anywhere.

Keys: ``zflow deployer keygen`` writes a private key (PEM, mode 0600, default
``~/.config/zflow/deployer.key`` or ``$ZFLOW_DEPLOYER_KEY``) and prints its public key
(``ed25519:<base64>``), the line to list in a daemon's ``trusted_deployers``. On a laptop (one
user, daemon and CLI on the same account) nothing needs configuring: the key is generated on
first use and a daemon with no ``trusted_deployers`` trusts that user's own key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from zflow import settings
from zflow.errors import UserError

KEY_ENV = settings.DEPLOYER_KEY
PUB_PREFIX = "ed25519:"
SIGNED_VERSION = 1


def default_key_path() -> Path:
    env = settings.deployer_key()
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "zflow" / "deployer.key"


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUB_PREFIX + base64.b64encode(raw).decode()


def parse_public(text: str, where: str = "trusted deployer key") -> Ed25519PublicKey:
    """``ed25519:<base64>`` (or a file holding that line) as a public key."""
    value = text.strip()
    if not value.startswith(PUB_PREFIX) and Path(value).expanduser().is_file():
        value = Path(value).expanduser().read_text(encoding="utf-8").strip()
    try:
        if not value.startswith(PUB_PREFIX):
            raise ValueError
        raw = base64.b64decode(value[len(PUB_PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        shown = value if len(value) < 80 else value[:77] + "..."
        raise UserError(f"{where}: expected '{PUB_PREFIX}<base64 of 32 bytes>' (printed by "
                        f"`zflow deployer keygen` or `zflow deployer pubkey`) or a file holding it, "
                        f"found {shown!r}") from None


def _write_new_key(path: Path) -> None:
    """Create the key file atomically: two processes racing on first use end with one key."""
    try:
        _link_new_key(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the deployer key: {exc.strerror} (set {KEY_ENV}, "
                        "or give daemons trusted_deployers)") from None


def _link_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=".deployer-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # fails if another process made one first: keep theirs
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> str:
        return public_text(self.key.public_key())

    def sign(self, flow: str, instance: str, graph: dict[str, Any]) -> dict[str, str]:
        sig = self.key.sign(signed_bytes(flow, instance, graph))
        return {"key": self.public, "sig": base64.b64encode(sig).decode()}


def load_signer(path: str | Path | None = None, create: bool | None = None) -> Signer:
    """The deployer key at ``path`` (default: :func:`default_key_path`, made on first use)."""
    p = Path(path).expanduser() if path else default_key_path()
    if create is None:
        create = path is None
    if not p.exists():
        if not create:
            raise UserError(f"{p}: deployer key not found (make one with `zflow deployer keygen --out {p}`)")
        _write_new_key(p)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except OSError as exc:
        raise UserError(f"{p}: cannot read the deployer key: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise UserError(f"{p}: not an unencrypted PEM private key (make one with `zflow deployer keygen`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"{p}: expected an Ed25519 private key, found {type(key).__name__}")
    return Signer(key, p)


def keygen(path: str | Path | None = None, force: bool = False) -> Signer:
    p = Path(path).expanduser() if path else default_key_path()
    if p.exists():
        if not force:
            raise UserError(f"{p}: a deployer key already exists (its public key: `zflow deployer pubkey`; "
                            "--force replaces it, and every daemon trusting it must be told the new one)")
        p.unlink()
    _write_new_key(p)
    return load_signer(p, create=False)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"cannot sign a {type(value).__name__}")


def signed_bytes(flow: str, instance: str, graph: dict[str, Any]) -> bytes:
    """The canonical bytes a deployer signs: stable across msgpack round trips and processes."""
    doc = {"v": SIGNED_VERSION, "flow": flow, "instance": instance, "graph": graph}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_plain).encode()


class Verifier:
    """A daemon's trusted deployer keys and the check it runs before loading an instance."""

    def __init__(self, trusted: list[str]):
        self.keys = {public_text(k): k for k in (parse_public(t) for t in trusted)}

    @staticmethod
    def for_daemon(trusted: list[str] | None) -> tuple[Verifier, str]:
        """The verifier and a line saying whom it trusts (laptop case: this user's own key)."""
        if trusted:
            v = Verifier(list(trusted))
            return v, f"trusting {len(v.keys)} deployer key(s)"
        signer = load_signer()
        return (Verifier([signer.public]),
                f"trusting this user's deployer key {signer.public[:20]}... ({signer.path}); "
                "list trusted_deployers in the daemon config for deployers on other machines")

    def check(self, flow: str, instance: str, graph: dict[str, Any], signature: Any) -> None:
        """Raise UserError unless a trusted deployer signed exactly this flow, instance and graph."""
        what = f"instance {flow}/{instance}"
        if not isinstance(signature, dict) or "key" not in signature or "sig" not in signature:
            raise UserError(f"{what} is not signed by a deployer: refused (deploy it with `zflow instance "
                            "create`, whose deployer key this daemon trusts)")
        key = self.keys.get(str(signature["key"]))
        if key is None:
            raise UserError(f"{what} is signed by deployer key {str(signature['key'])[:20]}..., which this "
                            "daemon does not trust: refused (add it to trusted_deployers)")
        try:
            key.verify(base64.b64decode(str(signature["sig"])), signed_bytes(flow, instance, graph))
        except (InvalidSignature, ValueError, TypeError):
            raise UserError(f"{what}: its deployer signature does not match its content: refused") from None
