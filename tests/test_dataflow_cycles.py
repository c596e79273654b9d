"""Issue 8, observation 4: a cycle nothing feeds is refused by `zflow check` (it would never end);
a fed cycle runs and ends by the stated rule (docs/dataflow.md, "Cycles"), losing nothing."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from zflow.dataflow import compile_file
from zflow.dataflow.validate import feedback_inputs

NODES = '''\
from zflow.runtime.api import Operator, Sink


class Head(Operator):
    """The loop's head: passes on the feed and what comes back around the loop."""
    inputs = ("feed", "back")
    outputs = ("out",)

    def on_input(self, port, value, ctx):
        ctx.put("out", value)


class Step(Operator):
    """Sends each sequence number around the loop ROUNDS times, then out of the loop."""
    inputs = ("in",)
    outputs = ("loop", "done")

    def on_input(self, port, value, ctx):
        seq, left = (value, ROUNDS) if isinstance(value, int) else (value["seq"], value["left"])
        if left > 0:
            ctx.put("loop", {"seq": seq, "left": left - 1})
        else:
            ctx.put("done", seq)


class Collect(Sink):
    inputs = ("in",)

    def setup(self, ctx):
        self.seen = []

    def on_input(self, port, value, ctx):
        self.seen.append(value)

    def on_end(self, ctx):
        print("collected", sorted(self.seen), flush=True)
'''

UNFED = """\
name: unfed
sources:
  - {id: tick, operator: timer, configuration: {count: 3}, outputs: [out]}
operators:
  - {id: a, operator: ./nodes.py:Head, inputs: [feed, back], outputs: [out]}
  - {id: b, operator: ./nodes.py:Step, inputs: [in], outputs: [loop, done]}
sinks:
  - {id: sink, operator: ./nodes.py:Collect, inputs: [in]}
links:
  - {from: {node: a, output: out}, to: {node: b, input: in}}
  - {from: {node: b, output: loop}, to: {node: a, input: back}}
  - {from: {node: b, output: done}, to: {node: a, input: feed}}
  - {from: {node: tick, output: out}, to: {node: sink, input: in}}
"""

FED = """\
name: fed
sources:
  - {id: tick, operator: timer, configuration: {period_ms: 5, count: 40, payload: tick}, outputs: [out]GROUP}
operators:
  - {id: head, operator: ./nodes.py:Head, inputs: [feed, back], outputs: [out]GROUP}
  - {id: step, operator: ./nodes.py:Step, inputs: [in], outputs: [loop, done]GROUP}
sinks:
  - {id: sink, operator: ./nodes.py:Collect, inputs: [in]GROUP}
links:
  - {from: {node: tick, output: out}, to: {node: head, input: feed}}
  - {from: {node: head, output: out}, to: {node: step, input: in}}
  - {from: {node: step, output: loop}, to: {node: head, input: back}, qos: {loop_idle: 5s}}
  - {from: {node: step, output: done}, to: {node: sink, input: in}}
"""


def _write(tmp: Path, text: str, rounds: int = 3) -> Path:
    (tmp / "nodes.py").write_text(NODES.replace("ROUNDS", str(rounds)))
    flow = tmp / "flow.yaml"
    flow.write_text(text)
    return flow


def _cli(zflow_cmd: list[str], env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*zflow_cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_unfed_cycle_is_refused_naming_nodes_and_links(tmp_path: Path, zflow_cmd: list[str],
                                                       cli_env: dict[str, str]) -> None:
    flow = _write(tmp_path, UNFED)
    res = _cli(zflow_cmd, cli_env, "check", str(flow))
    assert res.returncode == 2, res.stdout
    assert (f"{flow}:10: links[0]: cycle a -> b -> a has no source: expected a source or a timer input "
            "feeding one of its nodes, found only links among them, so the flow would never end "
            f"(links: a/out -> b/in at {flow}:10; b/loop -> a/back at {flow}:11)") in res.stderr
    assert "Traceback" not in res.stderr
    run = _cli(zflow_cmd, cli_env, "run", str(flow), "--quiet")
    assert run.returncode == 2 and "has no source" in run.stderr


def test_self_loop_and_bigger_cycles_are_named(tmp_path: Path, zflow_cmd: list[str], cli_env: dict[str, str]) -> None:
    text = UNFED.replace("  - {from: {node: b, output: done}, to: {node: a, input: feed}}\n",
                         "  - {from: {node: b, output: done}, to: {node: c, input: feed}}\n"
                         "  - {from: {node: c, output: out}, to: {node: a, input: feed}}\n"
                         "  - {from: {node: d, output: out}, to: {node: d, input: back}}\n"
                         "  - {from: {node: tick, output: out}, to: {node: d, input: feed}}\n"
                         "  - {from: {node: c, output: out}, to: {node: e, input: feed}}\n"
                         "  - {from: {node: e, output: out}, to: {node: e, input: back}}\n")
    text = text.replace("sinks:", "  - {id: c, operator: ./nodes.py:Head, inputs: [feed, back], outputs: [out]}\n"
                                  "  - {id: d, operator: ./nodes.py:Head, inputs: [feed, back], outputs: [out]}\n"
                                  "  - {id: e, operator: ./nodes.py:Head, inputs: [feed, back], outputs: [out]}\n"
                                  "sinks:")
    text = text.replace("  - {from: {node: a, output: out}, to: {node: b, input: in}}\n",
                        "  - {from: {node: a, output: out}, to: {node: b, input: in}}\n"
                        "  - {from: {node: c, output: out}, to: {node: c, input: back}}\n")
    flow = _write(tmp_path, text)
    res = _cli(zflow_cmd, cli_env, "check", str(flow))
    assert res.returncode == 2
    # a, b, c feed each other (the shortest cycle through the first is shown, the rest named); e
    # loops on itself, fed only from that cycle; d loops on itself but the timer feeds it: allowed
    assert res.stderr.startswith("2 errors:\n"), res.stderr
    assert (f"{flow}:13: links[0]: cycle a -> b -> a (and c) has no source: expected a source or a timer "
            f"input feeding one of its nodes, found only links among them, so the flow would never end "
            f"(links: a/out -> b/in at {flow}:13; b/loop -> a/back at {flow}:15)") in res.stderr
    assert (f"{flow}:21: links[8]: cycle e -> e has no source: expected a source or a timer input feeding "
            f"one of its nodes, found only links among them, so the flow would never end "
            f"(links: e/out -> e/back at {flow}:21)") in res.stderr, res.stderr


def test_a_broken_link_into_a_cycle_is_reported_alone(tmp_path: Path, zflow_cmd: list[str],
                                                      cli_env: dict[str, str]) -> None:
    text = UNFED.replace("  - {from: {node: b, output: done}, to: {node: a, input: feed}}\n",
                         "  - {from: {node: tik, output: out}, to: {node: a, input: feed}}\n")
    flow = _write(tmp_path, text)
    res = _cli(zflow_cmd, cli_env, "check", str(flow))
    assert res.returncode == 2 and "unknown node 'tik' (did you mean 'tick'?)" in res.stderr
    assert "has no source" not in res.stderr  # the typo is what leaves it unfed


def test_fed_cycle_is_checked_ok_and_its_closing_input_is_feedback(tmp_path: Path) -> None:
    graph = compile_file(_write(tmp_path, FED.replace("GROUP", "")), instance="t")
    assert [(n, p) for n, node in graph.nodes.items() for p, i in node.inputs.items() if i.feedback] == [("head", "back")]
    assert graph.nodes["head"].inputs["back"].qos.loop_idle == 5.0
    data = json.loads(json.dumps(graph.to_dict()))
    assert type(graph).from_dict(data) == graph


@pytest.mark.timeout(180)
@pytest.mark.parametrize("grouped", [False, True], ids=["process-per-node", "one-process"])
def test_fed_cycle_ends_and_loses_nothing(grouped: bool, tmp_path: Path, zflow_cmd: list[str],
                                          cli_env: dict[str, str]) -> None:
    flow = _write(tmp_path, FED.replace("GROUP", ", group: g" if grouped else ""), rounds=3)
    res = _cli(zflow_cmd, cli_env, "run", str(flow), timeout=150)
    assert res.returncode == 0, res.stderr
    assert "collected " + str(list(range(40))) in res.stderr, res.stderr  # each went round 3 times
    assert "finished in" in res.stderr and "no end-of-stream receipt" not in res.stderr


def test_feedback_inputs_break_every_cycle_of_random_flows() -> None:
    """Property: without feedback edges no cycle is left, and every reached node keeps an input
    that is not feedback (so its end of stream still comes from upstream)."""
    rng = random.Random(84)
    for _ in range(300):
        n = rng.randint(2, 12)
        ids = [f"n{i}" for i in range(n)]
        kinds = {nid: ("source" if i < rng.randint(1, 2) else "operator") for i, nid in enumerate(ids)}
        edges = []
        for dst in ids:
            if kinds[dst] == "source":
                continue
            for k, src in enumerate(rng.sample(ids, rng.randint(1, min(3, n)))):
                edges.append(SimpleNamespace(src=src, output="out", dst=dst, input=f"i{k}"))
        nodes = {nid: SimpleNamespace(kind=kinds[nid], timers={}, inputs={e.input: 1 for e in edges if e.dst == nid})
                 for nid in ids}
        ir = SimpleNamespace(nodes=nodes)
        back = feedback_inputs(ir, edges)  # type: ignore[arg-type]
        reached = {nid for nid in ids if kinds[nid] == "source"}  # cycles outside: refused by check
        frontier = list(reached)
        while frontier:
            node = frontier.pop()
            for e in edges:
                if e.src == node and e.dst not in reached:
                    reached.add(e.dst)
                    frontier.append(e.dst)
        forward = [e for e in edges if (e.dst, e.input) not in back and e.src in reached]
        n = len(reached)
        # acyclic: Kahn's algorithm consumes every reached node
        indegree = {nid: 0 for nid in reached}
        for e in forward:
            indegree[e.dst] += 1
        ready = [nid for nid, d in indegree.items() if d == 0]
        seen = 0
        while ready:
            node = ready.pop()
            seen += 1
            for e in forward:
                if e.src == node:
                    indegree[e.dst] -= 1
                    if indegree[e.dst] == 0:
                        ready.append(e.dst)
        assert seen == n, "a cycle is left without feedback edges"
        for nid in reached - {x for x in ids if kinds[x] == "source"}:
            assert any(e.dst == nid for e in forward), f"{nid} has only feedback inputs"
