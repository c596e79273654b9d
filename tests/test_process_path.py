"""One process and signal path (issue 9, item 1): ``zflow.process`` alone spawns, ties children
to their parent, handles stop signals and waits for readiness, and readiness is a liveliness
token, never a line of a log."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

from zflow import keyexprs, process
from zflow.process import StopSignal

ROOT = Path(__file__).resolve().parent.parent
OWNER = ROOT / "zflow" / "process.py"


def _calls(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("signal", "prctl", "killpg", "Popen"):
                if name == "Popen" and not any(k.arg == "start_new_session" for k in node.keywords):
                    continue  # a plain short-lived subprocess (e.g. a build tool) is not a child we own
                out.append((node.lineno, name))
    return out


def test_only_the_process_module_installs_handlers_spawns_sessions_or_sets_parent_death():
    bad = []
    for package in ("zflow", "operators", "storage_backends"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == OWNER:
                continue
            for line, name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name}(...)")
    assert not bad, "process handling outside zflow/process.py:\n" + "\n".join(bad)


def test_a_signal_only_flips_a_flag_and_the_previous_handler_comes_back():
    previous = signal.getsignal(signal.SIGTERM)
    also_seen = []
    stop = StopSignal(on_request=lambda: also_seen.append(True))
    with stop.installed((signal.SIGTERM,)):
        signal.raise_signal(signal.SIGTERM)
        assert stop.wait(timeout=2.0)
    assert also_seen == [True]
    assert signal.getsignal(signal.SIGTERM) is previous


def test_readiness_is_the_liveliness_token_not_the_log(router, zsession, tmp_path):
    key = keyexprs.storage_alive("runs", "4242")
    # The child prints the old readiness text at once but declares its token only later:
    # readiness must wait for the token.
    child = (
        "import sys, time, zenoh\n"
        "print('runs storage serving', flush=True)\n"
        "c = zenoh.Config(); c.insert_json5('mode', '\"client\"')\n"
        "c.insert_json5('scouting/multicast/enabled', 'false')\n"
        f"c.insert_json5('connect/endpoints', '[\"{router.endpoint}\"]')\n"
        "s = zenoh.open(c); time.sleep(1.0)\n"
        f"t = s.liveliness().declare_token('{key}'); print('token', flush=True); time.sleep(30)\n"
    )
    log = tmp_path / "child.log"
    proc = process.spawn_detached([sys.executable, "-c", child], log)
    try:
        assert process.wait_alive(zsession, key, timeout=30.0, proc=proc)
        assert "token" in log.read_text()  # ready only once the token exists
    finally:
        process.kill_group(proc.pid)
        proc.wait()


def test_a_child_that_dies_before_its_token_is_not_ready(zsession, tmp_path):
    proc = process.spawn_detached([sys.executable, "-c", "print('runs storage serving')"], tmp_path / "x.log")
    assert not process.wait_alive(zsession, keyexprs.storage_alive("runs", str(proc.pid)), timeout=30.0, proc=proc)
    assert proc.wait(timeout=10) == 0


def test_stop_pid_kills_a_child_that_ignores_the_signal(tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    process.stop_pid(proc.pid, signal.SIGINT, timeout=0.5)
    assert proc.wait(timeout=10) == -signal.SIGKILL
