"""The image's entrypoint: run the action's handler once with the same code daemons use.

``python -m zflow.build.run_action ACTION_DIR`` reads the inputs as one JSON object on stdin
and writes ``{"outputs": [...], "logs": "..."}`` on stdout; a failed run exits 1 with the
step's message on stderr. (An HTTP function entrypoint is the next builder issue.)
"""

from __future__ import annotations

import json
import platform
import sys

from zflow.workflows.action import load_action
from zflow.workflows.handlers import Handler, StepFailure


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = args[0] if args else "/opt/zflow/action"
    action = load_action(directory)
    if action.is_trigger:
        print(f"error: {action.id} is a trigger (ryax_run.py): it runs under the zflow host, not once",
              file=sys.stderr)
        return 2
    inputs = json.loads(sys.stdin.read() or "{}")
    try:
        outputs, logs = Handler(action)(inputs)
    except StepFailure as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    json.dump({"outputs": outputs, "logs": logs, "machine": platform.machine()}, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
