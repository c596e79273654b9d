"""Building Zenoh configs and owning sessions.

Every session zflow opens goes through :func:`open_session`, which returns a context manager:
a Python process that exits with an open Zenoh session can hang at interpreter exit, so
sessions are always closed by their owner.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zenoh

from zflow.errors import UserError

Mode = Literal["router", "peer", "client"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (for tests and the embedded router)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class SessionOptions:
    """What a zflow process needs to say about its Zenoh session."""

    mode: Mode = "client"
    listen: list[str] = field(default_factory=list)
    connect: list[str] = field(default_factory=list)
    config_file: str | None = None  # a JSON5 Zenoh config (router_config/); options override it
    multicast_scouting: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # raw "path/in/config" -> value

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "listen": list(self.listen),
            "connect": list(self.connect),
            "config_file": self.config_file,
            "multicast_scouting": self.multicast_scouting,
            "extra": dict(self.extra),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> SessionOptions:
        return SessionOptions(**data)


def make_config(opts: SessionOptions) -> zenoh.Config:
    """Build a Zenoh config: the file (if any) first, then zflow's settings on top."""
    if opts.config_file:
        path = Path(opts.config_file)
        if not path.is_file():
            raise UserError(f"{opts.config_file}: Zenoh config file not found")
        try:
            cfg = zenoh.Config.from_file(str(path))
        except Exception as exc:  # zenoh raises its own ZError with the parser's message
            raise UserError(f"{opts.config_file}: not a valid Zenoh config: {exc}") from None
    else:
        cfg = zenoh.Config()
    cfg.insert_json5("mode", json.dumps(opts.mode))
    if not opts.config_file or not opts.multicast_scouting:
        cfg.insert_json5("scouting/multicast/enabled", json.dumps(opts.multicast_scouting))
    if opts.listen:
        cfg.insert_json5("listen/endpoints", json.dumps(opts.listen))
    if opts.connect:
        cfg.insert_json5("connect/endpoints", json.dumps(opts.connect))
    # Routers use HLC timestamps so every sample carries Zenoh time.
    if opts.mode == "router":
        cfg.insert_json5("timestamping/enabled", json.dumps({"router": True, "peer": True, "client": True}))
    for key, value in opts.extra.items():
        cfg.insert_json5(key, json.dumps(value))
    return cfg


def config_listen(config_file: str | None, mode: Mode) -> list[str]:
    """The listen endpoints a Zenoh config file sets for ``mode`` (a list, or a per-mode map)."""
    if not config_file:
        return []
    try:
        raw = json.loads(zenoh.Config.from_file(str(config_file)).get_json("listen/endpoints"))
    except Exception:  # a missing or bad file is reported by make_config, with its path
        return []
    if isinstance(raw, dict):
        raw = raw.get(mode) or []
    return [str(e) for e in raw or []]


SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


@contextlib.contextmanager
def private_socket(folder: str | None = None) -> Iterator[str]:
    """A Unix-socket endpoint in a 0700 directory: only this user can connect to it.

    A router daemon's own node hosts join through it instead of an open loopback TCP port,
    which any local user (or a process in another container sharing the host network) could
    reach; the router's ACL gives the ``unixsock-stream`` subject the rights of node hosts.
    ``folder`` (the daemon's ``<data dir>/run``, so a killed daemon leaves nothing elsewhere) is
    used when the socket path fits, else a fresh temporary directory.
    """
    if folder and len(os.path.join(os.path.abspath(folder), "router.sock.lock")) <= SOCKET_PATH_MAX:
        path = Path(os.path.abspath(folder))
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        for stale in ("router.sock", "router.sock.lock"):  # left by a daemon that was killed
            with contextlib.suppress(FileNotFoundError):
                (path / stale).unlink()
        made = False
    else:
        path, made = Path(tempfile.mkdtemp(prefix="zflow-")), True
    try:
        yield f"unixsock-stream/{path}/router.sock"
    finally:
        if made:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for name in ("router.sock", "router.sock.lock"):
                with contextlib.suppress(FileNotFoundError):
                    (path / name).unlink()


def zenoh_error_text(exc: BaseException) -> str:
    """A Zenoh error without the Rust source locations and debug wrappers a person cannot use."""
    text = re.sub(r"\s+at \S+\.rs:\d+\.?", "", str(exc))
    inner = re.search(r'msg: "(.*?)"', text)
    return inner.group(1) if inner else text


@contextlib.contextmanager
def open_session(opts: SessionOptions) -> Iterator[zenoh.Session]:
    """Open a session and always close it."""
    try:
        session = zenoh.open(make_config(opts))
    except zenoh.ZError as exc:
        raise UserError(f"cannot open Zenoh session ({opts.mode}): {zenoh_error_text(exc)}") from None
    try:
        yield session
    finally:
        with contextlib.suppress(Exception):
            session.close()


class EmbeddedRouter:
    """A Zenoh router inside this Python process (``mode: router``): no zenohd needed."""

    def __init__(self, listen: list[str] | None = None, config_file: str | None = None,
                 host: str = "127.0.0.1"):
        self.listen = listen or [f"tcp/{host}:{free_port(host)}"]
        self.config_file = config_file
        self._stack = contextlib.ExitStack()
        self.session: zenoh.Session | None = None

    @property
    def endpoint(self) -> str:
        return self.listen[0]

    def client_options(self) -> SessionOptions:
        return SessionOptions(mode="client", connect=[self.endpoint])

    def __enter__(self) -> EmbeddedRouter:
        opts = SessionOptions(mode="router", listen=self.listen, config_file=self.config_file)
        self.session = self._stack.enter_context(open_session(opts))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.session = None
