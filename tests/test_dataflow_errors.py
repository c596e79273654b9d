"""Bad descriptors: each case asserts the file, line, document path, message and hint a person sees.

The expected line is marked in the YAML with a ``#<`` comment, so the cases stay readable.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zflow.dataflow import check_file, compile_file
from zflow.errors import UserError

OK_PY = "class Clean:\n    pass\n\n\ndef helper():\n    return 1\n"

# (case id, {file: text}, [(file, path, message part, hint part or None)], vars)
CASES: list[tuple[str, dict[str, str], list[tuple[str, str, str, str | None]], dict[str, str] | None]] = [
    ("unknown-field", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - id: k
            operatr: print  #<
            inputs: {i: s/o}
        """}, [("flow.yaml", "sinks[0].operatr", "unknown field", "did you mean 'operator'?")], None),
    ("link-field-typo", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: [i]}
        links:
          - {from: {node: s, output: o}, to: {node: k, inptu: i}}  #<
        """}, [("flow.yaml", "links[0].to.inptu", "unknown field", "did you mean 'input'?")], None),
    ("duplicate-id", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: s, operator: print, inputs: {i: s/o}}  #<
        """}, [("flow.yaml", "sinks[0].id", "duplicate node id 's'", "first declared at")], None),
    ("unknown-node", {"flow.yaml": """
        name: t
        sources:
          - {id: sensors, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: [i]}
        links:
          - {from: {node: sensor, output: o}, to: {node: k, input: i}}  #<
        """}, [("flow.yaml", "links[0].from.node", "unknown node 'sensor'", "did you mean 'sensors'?")], None),
    ("unknown-output", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [rows]}
        sinks:
          - {id: k, operator: print, inputs: [i]}
        links:
          - {from: {node: s, output: row}, to: {node: k, input: i}}  #<
        """}, [("flow.yaml", "links[0].from.output", "node 's' has no output 'row'", "did you mean 'rows'?")], None),
    ("unknown-input-lists-known", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: [data]}
        links:
          - {from: {node: s, output: o}, to: {node: k, input: zzz}}  #<
        """}, [("flow.yaml", "links[0].to.input", "node 'k' has no input 'zzz'", "known inputs: data")], None),
    ("link-from-sink", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: op, operator: window, inputs: [i, j], outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: op/o}}
        links:
          - {from: {node: s, output: o}, to: {node: op, input: i}}
          - {from: {node: k, output: i}, to: {node: op, input: j}}  #<
        """}, [("flow.yaml", "links[1].from.node", "'k' is a sink: a link cannot start from it", "outputs to inputs")], None),
    ("link-into-source", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        links:
          - {from: {node: s, output: o}, to: {node: s, input: o}}  #<
        """}, [("flow.yaml", "links[0].to.node", "'s' is a source: a link cannot end at it", None)], None),
    ("port-wrong-direction", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: op, operator: window, inputs: {x: s/o}, outputs: [y]}
        sinks:
          - {id: k, operator: print, inputs: [i]}
        links:
          - {from: {node: op, output: x}, to: {node: k, input: i}}  #<
        """}, [("flow.yaml", "links[0].from.output", "node 'op' has no output 'x'", "'x' is an input of 'op'")], None),
    ("unconnected-input", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - id: k
            operator: print
            inputs: {i: s/o}
          - id: k2
            operator: print
            inputs: [lonely]  #<
        """}, [("flow.yaml", "sinks[1].inputs[0]", "input 'lonely' of 'k2' is not connected", "add a link")], None),
    ("doubly-connected-links", {"flow.yaml": """
        name: t
        sources:
          - {id: a, operator: sensor-sim, outputs: [o]}
          - {id: b, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: [i]}
        links:
          - {from: {node: a, output: o}, to: {node: k, input: i}}
          - {from: {node: b, output: o}, to: {node: k, input: i}}  #<
        """}, [("flow.yaml", "links[1]", "input 'i' of 'k' is connected twice (also from a/o)", "first connection at")], None),
    ("doubly-connected-both-syntaxes", {"flow.yaml": """
        name: t
        sources:
          - {id: a, operator: sensor-sim, outputs: [o]}
          - {id: b, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: a/o}}
        links:
          - {from: {node: b, output: o}, to: {node: k, input: i}}  #<
        """}, [("flow.yaml", "links[0]", "input 'i' of 'k' is connected twice", None)], None),
    ("unknown-builtin", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: prnt, inputs: {i: s/o}}  #<
        """}, [("flow.yaml", "sinks[0].operator", "unknown operator 'prnt'", "did you mean 'print'?")], None),
    ("operator-file-missing", {"clean.py": OK_PY, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: c, operator: ./clen.py, inputs: {i: s/o}, outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: c/o}}
        """}, [("flow.yaml", "operators[0].operator", "operator file not found", "did you mean 'clean.py'?")], None),
    ("operator-file-syntax-error", {"clean.py": "def clean(value, ctx)\n    return value\n", "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: c, operator: ./clean.py, inputs: {i: s/o}, outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: c/o}}
        """}, [("flow.yaml", "operators[0].operator", "clean.py:1: expected ':'", None)], None),
    ("unknown-node-close-to-a-broken-one", {"flow.yaml": """
        name: t
        sources:
          - {id: sensors, operater: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: sensrs/o}}  #<
        """}, [("flow.yaml", "sinks[0].inputs.i", "unknown node 'sensrs'", "did you mean 'sensors'?")], None),
    ("attribute-missing", {"clean.py": OK_PY, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: c, operator: "./clean.py:Claen", inputs: {i: s/o}, outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: c/o}}
        """}, [("flow.yaml", "operators[0].operator", "'Claen' is not defined in", "did you mean 'Clean'?")], None),
    ("module-missing", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: "no_such_pkg_zflow.mod:Node", outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].operator", "module 'no_such_pkg_zflow.mod' cannot be found", None)], None),
    ("native-library", {"flow.yaml": """
        name: t
        sources:
          - {id: s, library: "file:///opt/libsource.so", outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].library", "native library 'libsource.so' cannot run", "python-script")], None),
    ("no-run-target", {"flow.yaml": """
        name: t
        sources:
          - id: s  #<
            outputs: [o]
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0]", "node 's' does not say what it runs", "add operator:")], None),
    ("two-run-targets", {"clean.py": OK_PY, "flow.yaml": """
        name: t
        sources:
          - id: s
            operator: sensor-sim
            library: ./clean.py  #<
            outputs: [o]
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].library", "sets both 'operator' and 'library'", "set exactly one")], None),
    ("type-mismatch", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [{id: o, type: json}]}
        sinks:
          - {id: k, operator: print, inputs: [{id: i, type: bytes}]}
        links:
          - {from: {node: s, output: o}, to: {node: k, input: i}}  #<
        """}, [("flow.yaml", "links[0]", "type mismatch: s/o sends json but k/i expects bytes", "declare the input as any")], None),
    ("type-mismatch-inline", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [{id: o, type: "ndarray[float64]"}]}
        sinks:
          - id: k
            operator: print
            inputs: {i: {source: s/o, type: "ndarray[float32]"}}  #<
        """}, [("flow.yaml", "sinks[0].inputs.i.source", "sends ndarray[float64] but k/i expects ndarray[float32]", None)], None),
    ("unknown-port-type", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [{id: o, type: jsn}]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].outputs[0].type", "unknown port type 'jsn'", "did you mean 'json'?")], None),
    ("model-type-unknown-class", {"models.py": "class Reading:\n    pass\n", "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [{id: o, type: "model:models:Readng"}]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].outputs[0].type", "port type model:models:Readng: 'Readng' is not defined",
                "did you mean 'Reading'?")], None),
    ("group-split-across-daemons", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o], group: g}
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}, group: g}  #<
        mapping:
          edge-1: [s]
          edge-2: [k]
        """}, [("flow.yaml", "sinks[0]", "'k' is in group 'g' with 's' but placed on daemon 'edge-2', not 'edge-1'",
                "place its nodes together")], None),
    ("daemon-id-bad", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        mapping:
          "edge 1": [s]  #<
        """}, [("flow.yaml", "mapping.edge 1", "daemon id 'edge 1' cannot be used in a Zenoh key expression", None)], None),
    ("bad-ndarray-dtype", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [{id: o, type: "ndarray[flot32]"}]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].outputs[0].type", "unknown ndarray dtype 'flot32'", "did you mean 'float32'?")], None),
    ("undefined-var", {"flow.yaml": """
        name: t
        vars: {PERIOD: 100}
        sources:
          - {id: s, operator: sensor-sim, inputs: {t: "zflow/timer/millis/{{ PERIOD }}"}, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}, configuration: {n: "{{ PERIO }}"}}  #<
        """}, [("flow.yaml", "sinks[0].configuration.n", "variable 'PERIO' is not defined", "did you mean 'PERIOD'?")], None),
    ("var-without-value", {"flow.yaml": """
        name: t
        vars:
          DIR:
        sources:
          - {id: s, operator: "{{ DIR }}/src.py", outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].operator", "variable 'DIR' has no value", "pass --var DIR=...")], None),
    ("composite-self-recursion", {"loop.yaml": """
        inputs: [{id: in, node: me, input: in}]
        operators:
          - {id: me, descriptor: ./loop.yaml}  #<
        """, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: c, descriptor: ./loop.yaml, configuration: {}}
        links:
          - {from: {node: s, output: o}, to: {node: c, input: in}}
        """}, [("loop.yaml", "operators[0].descriptor", "composite recursion: flow.yaml -> loop.yaml -> loop.yaml", "cannot include itself")], None),
    ("composite-indirect-recursion", {"a.yaml": """
        operators:
          - {id: b, descriptor: ./b.yaml}
        """, "b.yaml": """
        operators:
          - {id: a, descriptor: ./a.yaml}  #<
        """, "flow.yaml": """
        name: t
        operators:
          - {id: top, descriptor: ./a.yaml}
        """}, [("b.yaml", "operators[0].descriptor", "composite recursion: flow.yaml -> a.yaml -> b.yaml -> a.yaml", None)], None),
    ("composite-exposed-unknown-node", {"stage.yaml": """
        inputs:
          - {id: in, node: clen, input: rows}  #<
        operators:
          - {id: clean, operator: window, inputs: [rows], outputs: [o]}
        """, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: stage, descriptor: ./stage.yaml}
        links:
          - {from: {node: s, output: o}, to: {node: stage, input: in}}
        """}, [("stage.yaml", "inputs[0].node", "unknown node 'clen'", "did you mean 'clean'?")], None),
    ("composite-exposed-unknown-port", {"stage.yaml": """
        inputs:
          - {id: in, node: clean, input: rows}
        outputs:
          - {id: out, node: clean, output: outt}  #<
        operators:
          - {id: clean, operator: window, inputs: [rows], outputs: [out]}
        """, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: stage, descriptor: ./stage.yaml}
        sinks:
          - {id: k, operator: print, inputs: {i: stage/out}}
        links:
          - {from: {node: s, output: o}, to: {node: stage, input: in}}
        """}, [("stage.yaml", "outputs[0].output", "node 'clean' has no output 'outt'", "did you mean 'out'?")], None),
    ("composite-port-unknown-from-outside", {"stage.yaml": """
        inputs:
          - {id: in, node: clean, input: rows}
        operators:
          - {id: clean, operator: window, inputs: [rows], outputs: [out]}
        """, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: stage, descriptor: ./stage.yaml}
        links:
          - {from: {node: s, output: o}, to: {node: stage, input: inn}}  #<
        """}, [("flow.yaml", "links[0].to.input", "node 'stage' has no input 'inn'", "did you mean 'in'?")], None),
    ("composite-file-missing", {"stage.yaml": "operators: []\n", "flow.yaml": """
        name: t
        operators:
          - {id: stage, descriptor: ./stag.yaml}  #<
        """}, [("flow.yaml", "operators[0].descriptor", "descriptor file not found", "did you mean 'stage.yaml'?")], None),
    ("bad-timer", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, inputs: {tick: dora/timer/minutes/1}, outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].inputs.tick", "bad timer 'dora/timer/minutes/1'", None)], None),
    ("zero-timer", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, inputs: {tick: zflow/timer/hz/0}, outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].inputs.tick", "the period must be greater than 0", None)], None),
    ("id-bad-keyexpr-chars", {"flow.yaml": """
        name: t
        sources:
          - {id: "sen*sors", operator: sensor-sim, outputs: [o]}  #<
        """}, [("flow.yaml", "sources[0].id", "node id 'sen*sors' cannot be used in a Zenoh key expression", None)], None),
    ("id-with-dot", {"flow.yaml": """
        name: t
        sources:
          - {id: a.b, operator: sensor-sim, outputs: [o]}  #<
        """}, [("flow.yaml", "sources[0].id", "node id 'a.b' contains '.'", "separates composite members")], None),
    ("port-bad-keyexpr-chars", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: ["o/x"]}  #<
        """}, [("flow.yaml", "sources[0].outputs[0]", "port 'o/x' cannot be used in a Zenoh key expression", None)], None),
    ("qos-priority-range", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: [i]}
        links:
          - {from: {node: s, output: o}, to: {node: k, input: i}, qos: {priority: 9}}  #<
        """}, [("flow.yaml", "links[0].qos.priority", "less than or equal to 7", None)], None),
    ("qos-bad-policy", {"flow.yaml": """
        name: t
        qos:
          policy: fifo  #<
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "qos.policy", "'block', 'drop_oldest' or 'latest'", None)], None),
    ("qos-bad-queue-size", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: {source: s/o, qos: {queue_size: 0}}}}  #<
        """}, [("flow.yaml", "sinks[0].inputs.i.qos.queue_size", "greater than or equal to 1", None)], None),
    ("bad-inline-source", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: s}}  #<
        """}, [("flow.yaml", "sinks[0].inputs.i", "bad input source 's'", "expected node/output")], None),
    ("publisher-wildcard", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, zenoh-publishers: {o: "site/*/x"}, inputs: {o: s/o}}  #<
        """}, [("flow.yaml", "sinks[0].zenoh-publishers.o", "a publisher needs a key without wildcards", None)], None),
    ("subscriber-bad-key", {"flow.yaml": """
        name: t
        sources:
          - {id: s, zenoh-subscribers: {o: "site//x"}}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].zenoh-subscribers.o", "has an empty chunk", None)], None),
    ("subscribers-on-sink", {"flow.yaml": """
        name: t
        sinks:
          - {id: k, zenoh-subscribers: {o: "a/b"}}  #<
        """}, [("flow.yaml", "sinks[0].zenoh-subscribers", "zenoh-subscribers is only for sources", None)], None),
    ("source-with-input", {"flow.yaml": """
        name: t
        sources:
          - {id: a, operator: sensor-sim, outputs: [o]}
          - {id: s, operator: sensor-sim, inputs: {x: a/o}, outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[1].inputs.x", "source 's' cannot have input 'x'", "make it an operator")], None),
    ("sink-with-output", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}, outputs: [x]}  #<
        """}, [("flow.yaml", "sinks[0].outputs", "sink 'k' cannot have outputs", None)], None),
    ("mapping-unknown-node", {"flow.yaml": """
        name: t
        sources:
          - {id: sensors, operator: sensor-sim, outputs: [o]}
        sinks:
          - {id: k, operator: print, inputs: {i: sensors/o}}
        mapping:
          edge-1: [sensor]  #<
        """}, [("flow.yaml", "mapping.edge-1[0]", "mapping names unknown node 'sensor'", "did you mean 'sensors'?")], None),
    ("missing-name", {"flow.yaml": """
        description: no name  #<
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        """}, [("flow.yaml", "name", "required field 'name' is missing", None)], None),
    ("bad-flow-name", {"flow.yaml": """
        name: my flow  #<
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        """}, [("flow.yaml", "name", "flow name 'my flow' cannot be used in a Zenoh key expression", None)], None),
    ("bad-backoff", {"flow.yaml": """
        name: t
        sources:
          - id: s
            operator: sensor-sim
            outputs: [o]
            restart: {policy: on-failure, backoff: soon}  #<
        """}, [("flow.yaml", "sources[0].restart.backoff", "expected a duration", None)], None),
    ("bad-restart-policy", {"flow.yaml": """
        name: t
        restart:
          policy: always  #<
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        """}, [("flow.yaml", "restart.policy", "'never' or 'on-failure'", None)], None),
    ("duplicate-port", {"flow.yaml": """
        name: t
        sources:
          - id: s
            operator: sensor-sim
            outputs:
              - o
              - o  #<
        """}, [("flow.yaml", "sources[0].outputs[1]", "duplicate port 'o'", None)], None),
    ("composite-ports-on-entry", {"stage.yaml": """
        inputs: [{id: in, node: w, input: i}]
        operators:
          - {id: w, operator: window, inputs: [i], outputs: [o]}
        """, "flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensor-sim, outputs: [o]}
        operators:
          - {id: stage, descriptor: ./stage.yaml, inputs: {in: s/o}}  #<
        """}, [("flow.yaml", "operators[0]", "composite 'stage' takes its ports from stage.yaml", None)], None),
    ("not-a-mapping", {"flow.yaml": """
        - just  #<
        - a list
        """}, [("flow.yaml", "", "expected a mapping", None)], None),
    ("cli-var-typo", {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: "{{ OPERATR }}", outputs: [o]}  #<
        sinks:
          - {id: k, operator: print, inputs: {i: s/o}}
        """}, [("flow.yaml", "sources[0].operator", "variable 'OPERATR' is not defined", "did you mean 'OPERATOR'?")],
     {"OPERATOR": "sensor-sim"}),
]


def _write(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def _marked_line(path: Path) -> int | None:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if "#<" in line:
            return number
    return None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_descriptor(tmp_path, case):
    _, files, expected, cli_vars = case
    _write(tmp_path, files)
    problems = check_file(tmp_path / "flow.yaml", cli_vars)
    rendered = "\n".join(p.render() for p in problems)
    for file, path, message, hint in expected:
        line = _marked_line(tmp_path / file)
        matches = [
            p for p in problems
            if p.file and Path(p.file).name == file and p.line == line
            and p.render().split(": ", 2)[1 if path else 0].startswith(path or "")
            and message in p.message
        ]
        assert matches, f"expected {file}:{line}: {path}: {message} in\n{rendered}"
        if hint is not None:
            assert any(hint in (p.hint or "") for p in matches), f"hint {hint!r} missing in\n{rendered}"
    with pytest.raises(UserError):
        compile_file(tmp_path / "flow.yaml", cli_vars)


def test_there_are_at_least_thirty_distinct_cases():
    assert len({c[0] for c in CASES}) >= 30


def test_every_problem_is_reported_at_once(tmp_path):
    _write(tmp_path, {"flow.yaml": """
        name: t
        sources:
          - {id: s, operator: sensr-sim, outputs: [o], qos: {priority: 0}}
        operators:
          - {id: op, operator: window, inputs: {i: s/o}, outputs: [o], grop: g}
        sinks:
          - {id: k, operator: print, inputs: [a, b]}
        links:
          - {from: {node: op, output: o}, to: {node: kk, input: a}}
          - {from: {node: op, output: oo}, to: {node: k, input: b}}
        """})
    problems = check_file(tmp_path / "flow.yaml")
    messages = [p.render().split(": ", 1)[1] for p in problems]
    assert messages == [
        "sources[0].qos.priority: input should be greater than or equal to 1",
        "operators[0].grop: unknown field (did you mean 'group'?)",
        "sinks[0].inputs[0]: input 'a' of 'k' is not connected (add a link to it, an inline source (port: node/output) or a timer)",
        "links[0].to.node: unknown node 'kk' (did you mean 'k'?)",
    ]
    # nodes with a shape error are left out quietly: no echo about 's' or 'op' (nor about
    # k/b, whose link comes from the broken 'op')


def test_invalid_yaml_is_a_located_problem(tmp_path):
    (tmp_path / "flow.yaml").write_text("name: t\nsources: [\n", encoding="utf-8")
    problems = check_file(tmp_path / "flow.yaml")
    assert len(problems) == 1 and "not valid YAML" in problems[0].message and problems[0].line


def test_missing_file_is_a_problem(tmp_path):
    problems = check_file(tmp_path / "nope.yaml")
    assert [p.message for p in problems] == ["file not found"]


MALFORMED = [
    "sources: 5\nname: t",
    "name: t\nsources: [5]",
    "name: t\nsources: [{id: 5, operator: print}]",
    "name: t\nlinks: [{from: x}]",
    "name: t\nsources: [{id: s, operator: sensor-sim, outputs: [o]}]\nsinks: [{id: k, operator: print, inputs: {5: s/o}}]",
    "name: t\nconfiguration: [1]",
    "name: t\nvars: [1]",
    "name: t\nvars: {1: a}",
    "name: t\nmapping: {a: b}",
    "name: t\noperators: [{id: c, descriptor: ./adir}]",
    "name: t\noperators: [{id: c, descriptor: ./empty.yaml}]",
    "name: t\noperators: [{id: c, descriptor: ./list.yaml}]",
    "name: 123",
    "name: t\nsources: [{id: s, operator: '', outputs: [o]}]",
    "name: t\nsources: [{id: s, operator: ':', outputs: [o]}]",
    "name: t\nsources: [{id: s, operator: 'a..b', outputs: [o]}]",
    "name: t\nsources: [{id: s, operator: '{{ a b }}', outputs: [o]}]",
    "name: t\nsources: [{id: '', operator: print, outputs: [o]}]",
    "name: t\nsources: [{id: s, zenoh-subscribers: {}, outputs: [o]}]",
    "name: t\nsources: [{id: s, operator: print, inputs: {t: {source: 5}}, outputs: [o]}]",
    "name: t\nsources: [{id: s, operator: print, outputs: [{id: o, type: 5}]}]",
    "name: t\nqos: {queue_size: true}",
    "name: t\nrestart: {backoff: '-5s'}",
    "name: t\nsources: [{id: s, operator: ./adir, outputs: [o]}]",
    "name: t\nsources: [{id: s, library: 'file:///nope/x.py', outputs: [o]}]",
    "name: t\nsources: [{id: s, operator: print, outputs: [o], deploy: [1]}]",
    "null",
    "",
    "[1, 2]",
    "name: t\nsources:\n  - &a {id: s, operator: print, outputs: [o]}\n  - *a",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_input_is_reported_never_a_traceback(tmp_path, text):
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "flow.yaml").write_text(text)
    problems = check_file(tmp_path / "flow.yaml")
    assert problems and all(p.file for p in problems)
    with pytest.raises(UserError):
        compile_file(tmp_path / "flow.yaml")
