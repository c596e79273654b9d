"""Zenoh, the floor everything else stands on.

- ``session``: the one place that builds Zenoh configs and opens/closes sessions;
- ``control_client``: queries to daemons and the scheduler (the control channel's client side);
- ``auth``: bootstrap tokens, checked by whoever holds the cluster secret.

Nothing here imports the daemon, the scheduler or the runtime: they all import this.
"""

from zflow.transport.session import (
    EmbeddedRouter,
    SessionOptions,
    free_port,
    make_config,
    open_session,
)

__all__ = ["EmbeddedRouter", "SessionOptions", "free_port", "make_config", "open_session"]
