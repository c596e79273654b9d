"""Soak: the fault suite's scenarios in a loop for as long as asked.

    python benchmarks/soak.py --seconds 600 [--only zenoh-sigstop,relay-sigkill] [--scale 2]

Each round runs every scenario (sequence-numbered messages over in-process, Zenoh, bridge and
cross-daemon links while consumers stall, node hosts and daemons are SIGKILLed and restarted and
a namespace is cut off), judges every link, and lists processes left behind. At the end it prints
the messages checked, the faults injected by kind, and per link anything lost, duplicated,
reordered, stale or miscounted. Exit 1 when anything was lost or left behind, 0 otherwise.
``--scale`` multiplies messages and fault lengths. Scenarios needing root (netns) are skipped
when namespaces cannot be made.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from faultlib import scenarios as S  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="run rounds until this much time has passed")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios (of {', '.join(S.ALL)})")
    parser.add_argument("--scale", type=float, default=1.0, help="messages and fault lengths x this")
    parser.add_argument("--keep", action="store_true", help="keep the scenarios' files (records, logs)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(S.ALL)
    unknown = [n for n in names if n not in S.ALL]
    if unknown or args.seconds <= 0 or args.scale <= 0:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}" if unknown else "--seconds and --scale must be > 0")

    base = Path(tempfile.mkdtemp(prefix="zflow-soak-"))
    faults: Counter[str] = Counter()
    checked = 0
    runs: Counter[str] = Counter()
    failures: dict[str, list[str]] = defaultdict(list)  # link or scenario -> what went wrong
    skipped: dict[str, str] = {}
    deadline = time.monotonic() + args.seconds
    t0 = time.monotonic()
    rounds = 0
    try:
        while time.monotonic() < deadline:
            rounds += 1
            for name in names:
                if name in skipped:
                    continue
                if time.monotonic() >= deadline and runs:
                    break
                directory = base / f"{rounds:04d}-{name}"
                try:
                    run = S.run(S.ALL[name], directory, scale=args.scale)
                except S.NetnsUnavailable as exc:
                    skipped[name] = str(exc)
                    continue
                runs[name] += 1
                faults.update(run.faults.count)
                checked += run.checked
                for rep in run.reports:
                    for problem in rep.problems():
                        failures[rep.link].append(f"round {rounds}: {problem}")
                for note in run.notes:
                    failures[name].append(f"round {rounds}: {note}")
                for pid, cmd in run.orphans:
                    failures[name].append(f"round {rounds}: orphan {pid}: {cmd[:120]}")
                status = "ok" if not (run.problems() or run.notes) else "FAULTY"
                print(f"[{time.monotonic() - t0:7.1f}s] round {rounds} {name}: {run.checked:,} checked, "
                      f"faults {dict(run.faults.count)}: {status}", flush=True)
                if not args.keep and status == "ok":
                    shutil.rmtree(directory, ignore_errors=True)
            if not runs:
                break
    finally:
        elapsed = time.monotonic() - t0
        print(f"\nsoak: {elapsed:.0f}s, {rounds} round(s), {sum(runs.values())} scenario run(s)")
        print(f"  messages checked   {checked:,}")
        print(f"  faults injected    {sum(faults.values())}  "
              + (", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none"))
        for name, why in skipped.items():
            print(f"  skipped            {name}: {why}")
        if failures:
            print("  anything lost, duplicated, reordered, stale, miscounted or left behind:")
            for link, problems in sorted(failures.items()):
                faulty_rounds = {p.split(":", 1)[0] for p in problems}
                print(f"    {link}: faulty in {len(faulty_rounds)} run(s)")
                for problem in problems[:5]:
                    print(f"      {problem}")
        else:
            print("  nothing lost, duplicated, reordered or left behind")
        if args.keep or failures:
            print(f"  files              {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
