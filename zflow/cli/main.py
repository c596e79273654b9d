"""``zflow`` command line: one module per area registers its subcommands.

Each module in :data:`COMMAND_MODULES` has ``register(subparsers)``; handlers are called as
``handler(args) -> int`` and import their heavy dependencies lazily, so ``zflow daemon`` on
a Raspberry Pi never imports numba or pyarrow.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from zflow.cli.args import Parser
from zflow.errors import RuntimeFailure, UserError, cut

COMMAND_MODULES = (
    "zflow.cli.flow",
    "zflow.cli.run",
    "zflow.cli.demo",
    "zflow.cli.workflow",
    "zflow.cli.tsdb",
    "zflow.cli.daemon",
    "zflow.cli.build",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="zflow", description="Zenoh-centric dataflow runtime for the IoT-edge-cloud continuum"
    )
    parser.add_argument("--version", action="version", version="zflow 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except RuntimeFailure as exc:
        print(f"error: {cut(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
