"""QA regressions of the runtime: signals, teardown, start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime_helpers import graph, node

from zflow.runtime.local_run import run_flow

QA = str(Path(__file__).parent / "nodes" / "qa.py")


def _two(sink_attr: str, **config) -> object:
    return graph("qa", [
        node("src", "source", QA, attr="three", outputs=["out"]),
        node("sink", "sink", QA, attr=sink_attr, inputs=["in"], config=config),
    ], [("src", "out", "sink", "in")])


def test_host_signal_handler_takes_no_lock():
    """A SIGTERM landing while the main thread holds an Event's lock must not deadlock the host
    (it did: two signals in a row left orphan hosts stuck in Event.set)."""
    script = textwrap.dedent("""
        import os, signal, time
        from zflow.dataflow.graph import Graph
        from zflow.runtime.node_host import Host, HostSpec, stop_on_signals
        from zflow.transport.session import SessionOptions
        host = Host(HostSpec(Graph(flow="f", instance="i", nodes={}, links=()), [], SessionOptions()))
        stop_on_signals(host)
        with host.done._cond:  # what the main loop holds inside done.wait()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here
        print("stopping" if host.stopping else "running")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "stopping", out.stderr


@pytest.mark.timeout(60)
def test_a_hung_teardown_does_not_keep_the_flow_alive(monkeypatch):
    monkeypatch.setenv("ZFLOW_TEARDOWN_TIMEOUT", "1")
    lines: list[str] = []
    result = run_flow(_two("TeardownHangs"), log=lambda n, line: lines.append(line))
    assert result.failed == ["qa/sink"] and not result.stopped
    assert any("'sink': teardown did not return within 1s" in line for line in lines)


def test_a_failing_teardown_is_reported_and_fails_the_node():
    lines: list[str] = []
    result = run_flow(_two("TeardownFails"), log=lambda n, line: lines.append(line))
    assert result.failed == ["qa/sink"]
    assert any("RuntimeError: teardown boom" in line for line in lines)


@pytest.mark.timeout(60)
def test_ctrl_c_while_a_node_is_still_in_setup_stops_at_once():
    """The stop event (set by Ctrl-C) used to be ignored until every node was ready."""
    import threading

    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    result = run_flow(_two("SlowSetup", seconds=60), log=None, stop=stop, ready_timeout=40)
    assert result.stopped and result.exit_code == 0


def test_quiet_run_still_shows_why_a_node_refused_its_input(tmp_path, cli_env, zflow_cmd):
    (tmp_path / "empty.py").write_text("x = 1\n")
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: q\nsources:\n  - {id: src, operator: ./empty.py, outputs: [out]}\n"
                    "sinks:\n  - {id: show, operator: print, inputs: {in: src/out}}\n")
    proc = subprocess.run([*zflow_cmd, "run", "-q", str(flow)], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "empty.py: defines no zflow node" in proc.stderr
    assert "refused their input: q/src" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--duration", "-1"], "--duration: expected a finite number of seconds greater than 0, got '-1'"),
    ([], "not a compiled graph"),
])
def test_run_refuses_bad_arguments_without_traceback(tmp_path, cli_env, zflow_cmd, args, message):
    bad = tmp_path / "graph.json"
    bad.write_text('{"flow": "x", "nodes": {"a": {}}}')
    proc = subprocess.run([*zflow_cmd, "run", str(bad), *args], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_endpoint_is_explained_without_rust_debug_text(cli_env, zflow_cmd):
    flow = str(Path(__file__).parents[1] / "examples" / "hello.yaml")
    proc = subprocess.run([*zflow_cmd, "run", flow, "--connect", "garbage"], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "Endpoints must be of the form" in proc.stderr
    assert ".rs:" not in proc.stderr and "Json5Err" not in proc.stderr


def test_a_syntax_error_in_an_operator_file_is_bad_input_not_a_traceback(tmp_path):
    from zflow.errors import UserError

    bad = tmp_path / "bad.py"
    bad.write_text("import zflow\n\n@zflow.source\ndef s(ctx)\n    yield 1\n")
    g = graph("syn", [
        node("src", "source", str(bad), outputs=["out"]),
        node("sink", "sink", QA, attr="drop", inputs=["in"]),
    ], [("src", "out", "sink", "in")])
    lines: list[str] = []
    with pytest.raises(UserError, match="syn/src"):
        run_flow(g, log=lambda n, line: lines.append(line), ready_timeout=20)
    assert any(f"{bad}:4: expected ':'" in line for line in lines), lines
    assert not any("Traceback" in line for line in lines)


def test_schema_into_a_path_that_is_a_file_is_a_usage_error(tmp_path, cli_env, zflow_cmd):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run([*zflow_cmd, "schema", "--out", str(blocker)], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_a_stop_during_a_restart_backoff_leaves_no_process(tmp_path):
    """stop_all() landing while a child waits to be restarted used to miss the restarted process."""
    import threading

    from zflow.dataflow.graph import RestartPolicy
    from zflow.runtime.supervisor import Supervisor

    marker = tmp_path / "marker"
    script = f"if [ -f {marker} ]; then exec sleep 30; else touch {marker}; exit 1; fi"
    sup = Supervisor(log=None)
    stopped = threading.Event()

    def backoff(_seconds: float) -> bool:  # the stop arrives during the backoff, then the backoff ends
        threading.Thread(target=lambda: (sup.stop_all(timeout=5), stopped.set())).start()
        stopped.wait(10)
        return False

    sup._sleep_unless_stopping = backoff  # type: ignore[method-assign]
    child = sup.spawn("c", ["sh", "-c", script], restart=RestartPolicy(policy="on-failure", max_restarts=3))
    try:
        assert sup.wait(timeout=15)
        assert child.state == "stopped" and child.proc is not None and child.proc.poll() is not None
    finally:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()


def test_a_value_returned_by_a_node_without_outputs_says_what_to_declare():
    g = graph("noout", [
        node("src", "source", QA, attr="three", outputs=["out"]),
        node("op", "operator", QA, attr="echo", inputs=["in"]),
    ], [("src", "out", "op", "in")])
    lines: list[str] = []
    result = run_flow(g, log=lambda n, line: lines.append(line))
    assert result.failed == ["noout/op"]
    assert any("declares no outputs; add outputs: [out]" in line for line in lines), lines


def test_the_supervisor_keeps_no_pipe_of_a_finished_child():
    import os

    from zflow.runtime.supervisor import Supervisor

    sup = Supervisor(log=None)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(5):
        sup.spawn(f"c{i}", ["true"])
    assert sup.wait(timeout=20)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_a_misspelt_var_is_pointed_out(cli_env, zflow_cmd):
    flow = str(Path(__file__).parent / "flows" / "nested.yaml")
    proc = subprocess.run([*zflow_cmd, "check", flow, "--var", "WINDOW=5", "--var", "WINDW=5"], env=cli_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "warning: --var WINDW: the flow neither declares nor uses this variable (did you mean 'WINDOW'?)" \
        in proc.stderr
    assert "--var WINDOW:" not in proc.stderr


@pytest.mark.timeout(60)
def test_stopping_a_zenoh_subscribe_source_is_clean():
    """Its readers block in recv(); undeclaring under them raised 'Already borrowed' on every stop."""
    g = graph("zsub", [
        node("in", "source", "zenoh-subscribe", builtin=True, outputs=["out"],
             config={"keys": {"out": "qa/zsub/**"}}),
        node("sink", "sink", QA, attr="drop", inputs=["in"]),
    ], [("in", "out", "sink", "in")])
    lines: list[str] = []
    result = run_flow(g, duration=0.5, log=lambda n, line: lines.append(line))
    # stopped cleanly on the supervisor's SIGTERM: 128 + 15, never a crash's code
    assert result.stopped and result.status["zsub/in"]["state"] == "stopped", lines
    assert result.status["zsub/in"]["exit_code"] == 143, lines
    assert not any("Traceback" in line for line in lines), lines


def test_children_survive_the_exit_of_the_thread_that_spawned_them(tmp_path):
    """PR_SET_PDEATHSIG follows the forking thread: a child started from a short-lived thread
    (a Zenoh callback, say) must not be killed when that thread ends."""
    import sys
    import threading
    import time

    from zflow.runtime.supervisor import Supervisor

    script = tmp_path / "child.py"
    script.write_text(
        "import os, signal, sys, time, ctypes\n"
        "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM)\n"  # what node hosts do
        "print('up', flush=True)\n"
        "time.sleep(30)\n")
    up = threading.Event()
    with Supervisor(log=lambda name, line: up.set() if line == "up" else None) as sup:
        def spawn_then_exit() -> None:
            sup.spawn("c", [sys.executable, str(script)])
            up.wait(20)  # the child has asked for its death signal while this thread lives

        t = threading.Thread(target=spawn_then_exit)
        t.start()
        t.join()
        assert up.is_set()
        time.sleep(0.5)  # the spawning thread is gone; the child must still run
        assert sup.children["c"].proc.poll() is None
        assert sup.status()["c"]["state"] == "running"


@pytest.mark.parametrize("script", [
    "trap 'exit 143' TERM; while :; do sleep 0.05; done",  # a node host: stops cleanly, says SIGTERM
    "exec sleep 30",  # a plain process: killed by the signal
])
def test_a_child_stopped_by_sigterm_from_outside_is_stopped_not_exited(script):
    """A node host stopped by SIGTERM (a daemon handing it over, an operator's ``kill``) has not
    finished: reported ``stopped`` and not restarted, never ``exited`` with code 0."""
    import signal
    import time

    from zflow.dataflow.graph import RestartPolicy
    from zflow.runtime.supervisor import Supervisor

    sup = Supervisor(log=None)
    child = sup.spawn("c", ["sh", "-c", script], restart=RestartPolicy(policy="on-failure", max_restarts=3))
    try:
        time.sleep(0.3)  # the trap is installed
        assert child.proc is not None
        child.proc.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=15)
        assert (child.state, child.restarts) == ("stopped", 0)
        assert "stopped by SIGTERM" in sup.events[-1].what
    finally:
        sup.stop_all(timeout=5)
