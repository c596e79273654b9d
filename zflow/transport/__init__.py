"""Zenoh sessions: the one place that builds Zenoh configs and opens/closes sessions."""

from zflow.transport.session import (
    EmbeddedRouter,
    SessionOptions,
    free_port,
    make_config,
    open_session,
)

__all__ = ["EmbeddedRouter", "SessionOptions", "free_port", "make_config", "open_session"]
