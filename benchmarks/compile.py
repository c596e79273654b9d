"""How long ``compile_file`` takes on a 50-node flow, next to just parsing the same YAML.

    python benchmarks/compile.py [--quick]

Prints milliseconds per call for the YAML parse (the baseline, measured in the same run),
``check_file`` and ``compile_file``, and each as a ratio to the parse.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zflow.dataflow import check_file, compile_file
from zflow.documents import load_document


def write_flow(folder: Path, chains: int = 5, length: int = 8) -> Path:
    """``chains`` pipelines of source -> ``length`` operators -> sink, half with written-out links."""
    (folder / "op.py").write_text("class Op:\n    pass\n")
    lines = ["name: bench", "vars: {PERIOD: 50}", "configuration: {threshold: 3}", "qos: {queue_size: 32}",
             "sources:"]
    for c in range(chains):
        lines.append(f"  - {{id: src{c}, operator: sensor-sim, inputs: {{t: 'zflow/timer/millis/{{{{ PERIOD }}}}'}},"
                     " outputs: [{id: out, type: json}]}")
    lines.append("operators:")
    links = []
    for c in range(chains):
        prev = f"src{c}"
        for i in range(length):
            nid = f"op{c}_{i}"
            if c % 2:
                lines.append(f"  - {{id: {nid}, operator: './op.py:Op', inputs: {{in: {prev}/out}},"
                             " outputs: [{id: out, type: json}]}")
            else:
                lines.append(f"  - {{id: {nid}, operator: window, inputs: [{{id: in, type: json}}], outputs: [out], configuration: {{size: 10, fields: [temperature]}}}}")
                links.append(f"  - {{from: {{node: {prev}, output: out}}, to: {{node: {nid}, input: in}}}}")
            prev = nid
        links.append(f"  - {{from: {{node: {prev}, output: out}}, to: {{node: sink{c}, input: in}},"
                     " qos: {policy: drop_oldest}}")
    lines.append("sinks:")
    lines += [f"  - {{id: sink{c}, operator: print, inputs: [in]}}" for c in range(chains)]
    lines.append("links:")
    lines += links
    path = folder / "flow.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def per_call(fn, repeat: int) -> float:
    fn()  # warm caches (imports, file stats)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeat = 20 if args.quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        path = write_flow(Path(tmp))
        nodes = len(compile_file(path).nodes)
        parse = per_call(lambda: load_document(path), repeat)
        check = per_call(lambda: check_file(path), repeat)
        compiled = per_call(lambda: compile_file(path), repeat)
    print(f"flow with {nodes} nodes, {repeat} runs each")
    print(f"  parse YAML (baseline)  {parse * 1e3:7.2f} ms")
    print(f"  check_file             {check * 1e3:7.2f} ms   {check / parse:5.1f}x parse")
    print(f"  compile_file           {compiled * 1e3:7.2f} ms   {compiled / parse:5.1f}x parse")


if __name__ == "__main__":
    main()
