"""The built-in operator registry (``operators/__init__.py``), as the descriptor checker sees it.

``operators/__init__.py`` holds only literals, so importing it runs no operator code; the
operator modules themselves are imported only by the node host that runs them.
"""

from __future__ import annotations

from typing import Any


def builtin_operators() -> dict[str, str]:
    """Built-in operator name -> ``"module:attr"``."""
    from operators import BUILTINS

    return dict(BUILTINS)


def builtin_ports(name: str) -> dict[str, list[str]]:
    """Default ``inputs``/``outputs`` of a built-in (empty when it has none listed)."""
    from operators import BUILTIN_PORTS

    return BUILTIN_PORTS.get(name, {})


def builtin_config_problems(name: str, config: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems with a built-in's merged configuration, as (key path, message)."""
    from operators.configs import check_config

    return check_config(name, config)
