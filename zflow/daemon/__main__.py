"""The lean daemon process: ``python -m zflow.daemon RESOLVED.json`` (exec'd by ``zflow daemon run``).

It reads the already-validated identity and never imports pydantic or the CLI.
"""

from __future__ import annotations

import json
import os
import sys

from zflow.daemon.identity import Identity
from zflow.daemon.server import run_daemon
from zflow.errors import UserError


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    try:
        return run_daemon(Identity.from_dict(spec["identity"]), echo=spec.get("echo", True),
                          secret_file=spec.get("secret_file"), ready_file=spec.get("ready_file"))
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # sessions are closed by then; never hang in Zenoh's threads at exit
