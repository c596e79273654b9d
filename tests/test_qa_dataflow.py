"""QA regressions of the descriptor side."""

from __future__ import annotations

from zflow.dataflow import compile_file


def test_zenoh_bridges_used_by_name_get_one_port_per_key(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: z\n"
        "sources:\n  - {id: in, operator: zenoh-subscribe, configuration: {keys: {raw: 'site/**'}}}\n"
        "sinks:\n  - {id: out, operator: zenoh-publish, configuration: {keys: {clean: site/clean}},"
        " inputs: {clean: in/raw}}\n")
    g = compile_file(flow)
    assert list(g.nodes["in"].outputs) == ["raw"]
    assert list(g.nodes["out"].inputs) == ["clean"]
