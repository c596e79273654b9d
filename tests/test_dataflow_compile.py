"""Compiling descriptors into graphs: vars, composites, both link syntaxes, QoS, config, Zenoh-Flow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zflow.dataflow import check_file, compile_dict, compile_file, load_flow
from zflow.dataflow.compiler import new_instance_id
from zflow.dataflow.graph import Graph, QoS, RunSpec
from zflow.dataflow.models import DataflowModel
from zflow.dataflow.types import compatible, normalize
from zflow.errors import UserError

FLOWS = Path(__file__).resolve().parent / "flows"


def _strip_origin(graph: Graph) -> dict:
    """The graph without where-it-was-declared fields (differs between equivalent files)."""
    data = graph.to_dict()
    data.pop("source_file")
    for node in data["nodes"].values():
        node.pop("source_file")
        node.pop("source_line")
    return data


def test_pipeline_compiles_to_the_documented_keys_and_run_specs():
    g = compile_file(FLOWS / "pipeline.yaml", instance="i1")
    assert g.flow == "pipeline" and g.instance == "i1"
    assert list(g.nodes) == ["tick", "remote", "clean", "stage.win", "stage.detect", "out"]
    assert g.nodes["tick"].run == RunSpec(kind="builtin", target="sensor-sim")
    assert g.nodes["clean"].run == RunSpec(kind="python", target=str(FLOWS / "nodes" / "clean.py"), attr="Clean")
    assert g.nodes["remote"].run == RunSpec(kind="zenoh-subscriber", keys={"raw": "site1/sensors/**"})
    assert g.nodes["out"].run == RunSpec(kind="zenoh-publisher", keys={"alerts": "site1/alerts"})
    assert g.nodes["clean"].outputs["out"].key == "zflow/data/pipeline/i1/clean/out"
    assert g.nodes["stage.win"].outputs["agg"].key == "zflow/data/pipeline/i1/stage.win/agg"
    # a zenoh-subscriber source republishes on the data plane (every link can be tapped)
    assert g.nodes["remote"].outputs["raw"].key == "zflow/data/pipeline/i1/remote/raw"
    up = g.nodes["clean"].inputs["raw"].upstream
    assert up is not None and (up.node, up.output, up.key) == ("remote", "raw", "zflow/data/pipeline/i1/remote/raw")
    tick = g.nodes["tick"].inputs["tick"]
    assert tick.timer_ms == 100.0 and tick.upstream is None
    assert {(lk.src_node, lk.dst_node) for lk in g.links} == {
        ("tick", "clean"), ("remote", "clean"), ("clean", "stage.win"),
        ("stage.win", "stage.detect"), ("stage.detect", "out")}
    assert g.nodes["tick"].deploy == {"daemon": "edge-1"} and g.nodes["clean"].deploy == {"daemon": "edge-1"}
    assert g.nodes["out"].deploy == {}
    assert g.nodes["clean"].source_line == 14 and g.nodes["stage.win"].source_file.endswith("stage.yaml")


def test_vars_defaults_and_cli_overrides():
    g = compile_file(FLOWS / "pipeline.yaml", instance="i")
    assert g.vars == {"PERIOD": "100", "SITE": "site1"}
    g = compile_file(FLOWS / "pipeline.yaml", vars={"PERIOD": 250, "SITE": "site9"}, instance="i")
    assert g.nodes["tick"].inputs["tick"].timer_ms == 250.0
    assert g.nodes["remote"].run.keys == {"raw": "site9/sensors/**"}
    assert g.nodes["out"].run.keys == {"alerts": "site9/alerts"}


def test_a_whole_string_var_keeps_its_type(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "name: t\nvars: {Q: 8, T: 2.5}\n"
        "sources: [{id: s, operator: sensor-sim, outputs: [o], configuration: {t: '{{ T }}', label: 'q={{ Q }}'}}]\n"
        "sinks: [{id: k, operator: print, inputs: {i: {source: s/o, qos: {queue_size: '{{ Q }}'}}}}]\n")
    g = compile_file(tmp_path / "f.yaml")
    assert g.nodes["s"].config == {"t": 2.5, "label": "q=8"}
    assert g.nodes["k"].inputs["i"].qos.queue_size == 8


def test_config_layering_flow_composite_entry_node():
    g = compile_file(FLOWS / "pipeline.yaml", instance="i")
    assert g.nodes["tick"].config == {"threshold": 30, "unit": "C"}
    assert g.nodes["clean"].config == {"threshold": 25, "unit": "C"}  # node wins over flow
    # flow < composite file (window 5, size) < composite entry (window 10) < node (fields)
    assert g.nodes["stage.win"].config == {"threshold": 30, "unit": "C", "window": 10, "size": 4,
                                           "fields": ["temperature"]}


def test_nested_composites_flatten_with_namespaced_ids_and_inherit():
    g = compile_file(FLOWS / "nested.yaml", instance="n")
    assert sorted(g.nodes) == ["outer.clean", "outer.inner.detect", "outer.inner.win", "sink", "src"]
    links = {(lk.src_node, lk.src_output, lk.dst_node, lk.dst_input) for lk in g.links}
    assert links == {
        ("src", "rows", "outer.clean", "rows"),
        ("outer.clean", "out", "outer.inner.win", "rows"),
        ("outer.inner.win", "agg", "outer.inner.detect", "agg"),
        ("outer.inner.detect", "alerts", "sink", "in"),
    }
    assert g.nodes["outer.inner.detect"].outputs["alerts"].key == "zflow/data/nested/n/outer.inner.detect/alerts"
    # the outer flow's var wins over the inner composite's default
    assert g.nodes["outer.inner.win"].config == {
        "level": "win", "flow_only": 1, "outer_file_only": 2, "window": 10, "size": 3, "fields": ["temperature"]}
    assert g.nodes["outer.clean"].config["level"] == "outer-entry"
    assert g.nodes["outer.clean"].group == "fused" and g.nodes["outer.inner.detect"].group == "fused.g2"
    assert g.nodes["sink"].group is None
    assert g.groups()["fused"] == ["outer.clean", "outer.inner.win"]
    assert all(g.nodes[n].deploy == {"site": "edge"} for n in g.nodes if n.startswith("outer."))
    assert g.nodes["outer.clean"].restart.policy == "on-failure" and g.nodes["src"].restart.policy == "never"
    assert g.nodes["outer.clean"].run.target == str(FLOWS / "nodes" / "clean.py")  # relative to its file


def test_both_link_syntaxes_produce_identical_graphs():
    a = compile_file(FLOWS / "links.yaml", instance="same")
    b = compile_file(FLOWS / "inline.yaml", instance="same")
    assert _strip_origin(a) == _strip_origin(b)
    assert a.nodes["clean"].inputs["rows"].qos == QoS(queue_size=4, policy="drop_oldest")


def test_qos_layers_resolve_field_by_field():
    g = compile_file(FLOWS / "qos.yaml", instance="q")
    k = g.nodes["k"].inputs
    assert k["flow_and_node"].qos == QoS(queue_size=32, priority=6, policy="drop_oldest", reliability="best_effort")
    assert k["input_level"].qos == QoS(queue_size=2, priority=3, policy="drop_oldest", reliability="best_effort")
    assert k["latest"].qos.policy == "latest" and k["latest"].qos.queue_size == 1
    # link > input > node > flow
    assert g.nodes["k2"].inputs["x"].qos == QoS(queue_size=8, priority=1, policy="drop_oldest",
                                                 congestion_control="drop", reliability="best_effort", express=True)
    by_dst = {(lk.dst_node, lk.dst_input): lk for lk in g.links}
    assert by_dst[("k2", "x")].qos == g.nodes["k2"].inputs["x"].qos
    # a publisher serves every consumer: the most demanding of its links
    c = g.nodes["src"].outputs["c"].qos
    assert (c.priority, c.congestion_control, c.reliability, c.express) == (1, "drop", "best_effort", True)
    assert g.nodes["src"].outputs["a"].qos.priority == 6


def test_restart_policy_flow_default_and_node_override(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "name: t\nrestart: {policy: on-failure, max_restarts: 5}\n"
        "sources: [{id: s, operator: sensor-sim, outputs: [o], restart: {backoff: 250ms}}]\n"
        "sinks: [{id: k, operator: print, inputs: {i: s/o}, restart: {policy: never}}]\n")
    g = compile_file(tmp_path / "f.yaml")
    r = g.nodes["s"].restart
    assert (r.policy, r.max_restarts, r.backoff_s) == ("on-failure", 5, 0.25)
    assert g.nodes["k"].restart.policy == "never"


def test_zenoh_flow_descriptor_with_python_nodes_loads():
    base = FLOWS / "zenoh_flow"
    g = compile_file(base / "flow.yaml", vars={"BASE_DIR": str(base)}, instance="z")
    assert g.flow == "zf-python"
    assert g.nodes["zenoh-source"].run == RunSpec(kind="zenoh-subscriber", keys={"out": "zf-python/source"})
    assert g.nodes["python-sink"].run == RunSpec(kind="python", target=str(base / "sink.py"))
    # node descriptor file with `uri:` (relative to that file), Rust-ish port types
    scale = g.nodes["scale"]
    assert scale.run == RunSpec(kind="python", target=str(base / "scale.py"))
    assert scale.inputs["in"].type == "int" and scale.outputs["out"].type == "float"
    assert scale.config == {"unit": "celsius", "factor": 2}
    # wrapper library + configuration.python-script
    wrapped = g.nodes["wrapped"]
    assert wrapped.run.target == str(base / "scale.py") and "python-script" not in wrapped.config
    assert g.nodes["python-sink"].config == {"unit": "celsius", "test": "configuration-test"}
    assert g.nodes["zenoh-source"].deploy == {"daemon": "edge-0"}
    assert g.nodes["python-sink"].deploy == {"daemon": "cloud-0"}


def test_zenoh_flow_04_spelling_flow_and_node_files(tmp_path):
    (tmp_path / "op.py").write_text("def register():\n    return object\n")
    (tmp_path / "op.yml").write_text("id: PyOp\nuri: file://./op.py\ninputs: [{id: Data, type: usize}]\n"
                                     "outputs: [{id: Data, type: usize}]\ntags: []\n")
    (tmp_path / "flow.yml").write_text(
        "flow: PythonFlow\n"
        "sources: [{id: Gen, zenoh-subscribers: {Value: demo/value}}]\n"
        "operators: [{id: Op, descriptor: file://./op.yml}]\n"
        "sinks: [{id: Out, zenoh-publishers: {Value: demo/out}}]\n"
        "links:\n- {from: {node: Gen, output: Value}, to: {node: Op, input: Data}}\n"
        "- {from: {node: Op, output: Data}, to: {node: Out, input: Value}}\n")
    g = compile_file(tmp_path / "flow.yml", instance="x")
    assert g.flow == "PythonFlow" and g.nodes["Op"].run.target == str(tmp_path / "op.py")
    assert len(g.links) == 2


def test_typed_ports_compatible_across_links(tmp_path):
    (tmp_path / "readings.py").write_text("class Reading:\n    pass\n\n\nclass A:\n    pass\n\n\nclass B:\n    pass\n")
    (tmp_path / "f.yaml").write_text(
        "name: t\n"
        "sources: [{id: s, operator: sensor-sim, outputs: [{id: a, type: 'ndarray[float32]'}, {id: n, type: int},"
        " {id: m, type: 'model:readings:Reading'}]}]\n"
        "sinks: [{id: k, operator: print, inputs: {a: {source: s/a, type: ndarray}, n: {source: s/n, type: float},"
        " m: {source: s/m, type: 'model:readings:Reading'}}}]\n")
    assert check_file(tmp_path / "f.yaml") == []
    (tmp_path / "f.yaml").write_text(
        "name: t\nsources: [{id: s, operator: sensor-sim, outputs: [{id: a, type: 'model:readings:A'}]}]\n"
        "sinks: [{id: k, operator: print, inputs: {a: {source: s/a, type: 'model:readings:B'}}}]\n")
    with pytest.raises(UserError) as info:
        compile_file(tmp_path / "f.yaml")
    assert "type mismatch: s/a sends model:readings:A but k/a expects model:readings:B" in info.value.render()


@pytest.mark.parametrize(("src", "dst", "ok"), [
    ("ndarray[float32]", "ndarray", True), ("ndarray", "ndarray[float32]", False), ("json", "bytes", False),
    (None, "bytes", True), ("bytes", None, True), ("int", "float", True), ("float", "int", False),
    ("str", "json", True), ("ndarray[float32]", "ndarray[float64]", False),
])
def test_type_compatibility(src, dst, ok):
    assert compatible(src, dst) is ok


def test_type_names_normalize():
    assert normalize("any") == (None, None, None)
    assert normalize("usize")[0] == "int" and normalize("f64")[0] == "float" and normalize("String")[0] == "str"
    assert normalize("ndarray[ uint8 ]")[0] == "ndarray[uint8]"
    assert normalize("model:a.b:C")[0] == "model:a.b:C"
    assert normalize("model:nope")[1] == "bad model type 'model:nope'"


@pytest.mark.parametrize(("spec", "ms"), [
    ("zflow/timer/millis/100", 100.0), ("dora/timer/millis/5", 5.0), ("zflow/timer/secs/2", 2000.0),
    ("zflow/timer/hz/50", 20.0), ("dora/timer/secs/0.5", 500.0),
])
def test_timer_inputs(tmp_path, spec, ms):
    (tmp_path / "f.yaml").write_text(
        f"name: t\nsources: [{{id: s, operator: sensor-sim, inputs: {{tick: {spec}}}, outputs: [o]}}]\n"
        "sinks: [{id: k, operator: print, inputs: {i: s/o}}]\n")
    inp = compile_file(tmp_path / "f.yaml").nodes["s"].inputs["tick"]
    assert inp.timer_ms == pytest.approx(ms) and inp.upstream is None


def test_operator_forms(tmp_path):
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "__init__.py").write_text("raise RuntimeError('package code must not run at check time')\n")
    (tmp_path / "ops" / "nodes.py").write_text("class Clean:\n    pass\n")
    (tmp_path / "here.py").write_text("def node():\n    pass\n")
    (tmp_path / "f.yaml").write_text(
        "name: t\n"
        "sources:\n"
        "  - {id: a, operator: 'json:loads', outputs: [o]}\n"
        "  - {id: b, operator: 'ops.nodes:Clean', outputs: [o]}\n"
        "  - {id: c, operator: here.py, outputs: [o]}\n"
        "  - {id: d, operator: 'file://./here.py:node', outputs: [o]}\n"
        "  - {id: e, operator: 'email.mime.text', outputs: [o]}\n"
        "sinks: [{id: k, operator: print, inputs: {a: a/o, b: b/o, c: c/o, d: d/o, e: e/o}}]\n")
    g = compile_file(tmp_path / "f.yaml")
    assert g.nodes["a"].run == RunSpec(kind="python", target="json", attr="loads")
    assert g.nodes["b"].run == RunSpec(kind="python", target="ops.nodes", attr="Clean")
    assert g.nodes["c"].run == RunSpec(kind="python", target=str(tmp_path / "here.py"))
    assert g.nodes["d"].run == RunSpec(kind="python", target=str(tmp_path / "here.py"), attr="node")
    assert g.nodes["e"].run == RunSpec(kind="python", target="email.mime.text")
    assert g.nodes["k"].run == RunSpec(kind="builtin", target="print")


def test_compile_dict_resolves_files_against_base_dir(tmp_path):
    (tmp_path / "step.py").write_text("def handle(inputs):\n    return inputs\n")
    data = {
        "name": "generated",
        "sources": [{"id": "trigger", "operator": "sensor-sim", "outputs": ["out"]}],
        "operators": [{"id": "step", "operator": "./step.py:handle", "inputs": {"in": "trigger/out"},
                       "outputs": ["out"]}],
        "sinks": [{"id": "show", "operator": "print", "inputs": {"in": "step/out"}}],
    }
    g = compile_dict(data, str(tmp_path), instance="r1", source_file="workflow.yaml")
    assert g.nodes["step"].run == RunSpec(kind="python", target=str(tmp_path / "step.py"), attr="handle")
    assert g.source_file == "workflow.yaml"
    data["sinks"][0]["inputs"] = {"in": "stp/out"}
    with pytest.raises(UserError) as info:
        compile_dict(data, str(tmp_path))
    assert "sinks[0].inputs.in: unknown node 'stp' (did you mean 'step'?)" in info.value.render()


def test_graph_round_trips_through_json_and_rekeys():
    g = compile_file(FLOWS / "pipeline.yaml", instance="a1")
    again = Graph.from_dict(json.loads(json.dumps(g.to_dict())))
    assert again == g
    assert g.with_instance("b2") == compile_file(FLOWS / "pipeline.yaml", instance="b2")


def test_default_instance_is_short_random_hex():
    a, b = new_instance_id(), new_instance_id()
    assert re.fullmatch(r"[0-9a-f]{8}", a) and a != b
    g = compile_file(FLOWS / "links.yaml")
    assert re.fullmatch(r"[0-9a-f]{8}", g.instance)


def test_bad_instance_id_is_refused():
    with pytest.raises(UserError) as info:
        compile_file(FLOWS / "links.yaml", instance="a/b")
    assert "instance id 'a/b'" in info.value.render()


def test_load_flow_returns_model_and_substituted_document():
    model, doc = load_flow(FLOWS / "pipeline.yaml", vars={"SITE": "x"})
    assert isinstance(model, DataflowModel) and model.name == "pipeline"
    assert model.sinks[0].zenoh_publishers == {"alerts": "x/alerts"}
    assert doc.line_of(("sinks", 0)) == 23


def test_every_example_and_fixture_checks_clean():
    for path in sorted(FLOWS.glob("*.yaml")):
        assert check_file(path) == [], path
    examples = Path(__file__).resolve().parent.parent / "examples"
    for path in sorted(examples.glob("descriptors/*.yaml")):
        assert check_file(path) == [], path


def test_one_composite_used_twice_gets_two_namespaces():
    data = {
        "name": "twice",
        "sources": [{"id": "s", "operator": "sensor-sim", "outputs": ["o"]}],
        "operators": [{"id": "a", "descriptor": "./composites/stage.yaml"},
                      {"id": "b", "descriptor": "./composites/stage.yaml"}],
        "sinks": [{"id": "k", "operator": "print", "inputs": {"x": "a/alerts", "y": "b/alerts"}}],
        "links": [{"from": {"node": "s", "output": "o"}, "to": {"node": "a", "input": "in"}},
                  {"from": {"node": "s", "output": "o"}, "to": {"node": "b", "input": "in"}}],
    }
    g = compile_dict(data, str(FLOWS), instance="t")
    assert sorted(g.nodes) == ["a.detect", "a.win", "b.detect", "b.win", "k", "s"]
    assert g.nodes["k"].inputs["y"].upstream.key == "zflow/data/twice/t/b.detect/alerts"


def test_vars_in_mapping_keys_and_their_lines(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "name: t\nvars: {EDGE: edge-7}\n"
        "sources: [{id: s, operator: sensor-sim, outputs: [o]}]\n"
        "sinks: [{id: k, operator: print, inputs: {i: s/o}}]\n"
        "mapping:\n  '{{ EDGE }}':\n    - s\n    - kk\n")
    problems = check_file(tmp_path / "f.yaml")
    assert [(p.line, p.path, p.hint) for p in problems] == [
        (8, ("mapping", "edge-7", 1), "did you mean 'k'?")]
    (tmp_path / "f.yaml").write_text((tmp_path / "f.yaml").read_text().replace("    - kk\n", ""))
    assert compile_file(tmp_path / "f.yaml").nodes["s"].deploy == {"daemon": "edge-7"}


def test_json_descriptor(tmp_path):
    (tmp_path / "f.json").write_text(json.dumps({
        "name": "j",
        "sources": [{"id": "s", "operator": "sensor-sim", "outputs": ["o"]}],
        "sinks": [{"id": "k", "operator": "print", "inputs": ["i"]}],
        "links": [{"from": {"node": "s", "output": "o"}, "to": {"node": "k", "input": "ii"}}],
    }, indent=2))
    problems = check_file(tmp_path / "f.json")
    assert [p.render().split(": ", 1)[1] for p in problems] == [
        "links[0].to.input: node 'k' has no input 'ii' (did you mean 'i'?)"]
    assert problems[0].line == 29  # the line of "input": "ii"


def test_cycles_are_allowed(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "name: loop\n"
        "sources: [{id: s, operator: sensor-sim, outputs: [o]}]\n"
        "operators:\n"
        "  - {id: ctl, operator: ./ctl.py, inputs: {set: s/o, feedback: plant/y}, outputs: [u]}\n"
        "  - {id: plant, operator: ./plant.py, inputs: {u: {source: ctl/u, qos: {policy: latest}}}, outputs: [y]}\n")
    (tmp_path / "ctl.py").write_text("")
    (tmp_path / "plant.py").write_text("")
    g = compile_file(tmp_path / "f.yaml")
    assert {(lk.src_node, lk.dst_node) for lk in g.links} == {("s", "ctl"), ("plant", "ctl"), ("ctl", "plant")}


def test_compile_dict_leaves_braces_in_generated_data_alone(tmp_path):
    data = {
        "name": "gen",
        "sources": [{"id": "s", "operator": "sensor-sim", "outputs": ["o"],
                     "configuration": {"template": "Hello {{ name }}"}}],
        "sinks": [{"id": "k", "operator": "print", "inputs": {"i": "s/o"}}],
    }
    g = compile_dict(data, str(tmp_path))
    assert g.nodes["s"].config == {"template": "Hello {{ name }}"}
    with pytest.raises(UserError) as info:
        compile_dict({**data, "vars": {"who": "x"}}, str(tmp_path))
    assert "variable 'name' is not defined" in info.value.render()


def test_zenoh_flow_builtin_in_a_node_descriptor_file(tmp_path):
    (tmp_path / "pub.yml").write_text("description: my zenoh sink\nzenoh-publishers:\n  key_0: key/expr/0\n")
    (tmp_path / "flow.yml").write_text(
        "name: f\nsources: [{id: s, zenoh-subscribers: {o: a/b}}]\n"
        "sinks: [{id: k, descriptor: 'file://./pub.yml'}]\n"
        "links: [{from: {node: s, output: o}, to: {node: k, input: key_0}}]\n")
    g = compile_file(tmp_path / "flow.yml")
    assert g.nodes["k"].run == RunSpec(kind="zenoh-publisher", keys={"key_0": "key/expr/0"})
    (tmp_path / "flow.yml").write_text((tmp_path / "flow.yml").read_text().replace("sinks:", "operators:"))
    problems = check_file(tmp_path / "flow.yml")
    assert any("pub.yml declares zenoh-publishers, which is only for sinks" in p.message for p in problems)


def test_var_values_given_as_text_are_typed_like_the_cli(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "name: t\nvars: {Q: 4, ON: false, TAG: x}\n"
        "sources: [{id: s, operator: sensor-sim, outputs: [o], configuration: {on: '{{ ON }}', label: '{{ TAG }}-{{ ON }}'}}]\n"
        "sinks: [{id: k, operator: print, inputs: {i: {source: s/o, qos: {queue_size: '{{ Q }}'}}}}]\n")
    g = compile_file(tmp_path / "f.yaml", vars={"Q": "8", "ON": "true", "TAG": "007"})
    assert g.nodes["k"].inputs["i"].qos.queue_size == 8
    assert g.nodes["s"].config == {"on": True, "label": "007-true"}


def test_builtins_get_their_default_ports_and_configs_are_checked(tmp_path):
    from zflow.dataflow import check_file

    flow = tmp_path / "f.yaml"
    flow.write_text(
        "name: b\n"
        "sources: [{id: sim, operator: sensor-sim, configuration: {epochs: 2}}]\n"
        "operators:\n"
        "  - id: win\n"
        "    operator: window\n"
        "    inputs: {in: sim/out}\n"
        "    configuration: {fields: [temperature], size: -3}\n"
        "sinks: [{id: show, operator: print, inputs: {in: win/out}}]\n")
    problems = [p.render() for p in check_file(flow)]
    assert problems == [f"{flow}:7: operators[0].configuration.size: window: size: "
                        "input should be greater than 0 (got -3)"]
    flow.write_text(flow.read_text().replace("size: -3", "size: 3"))
    g = compile_file(flow)
    assert list(g.nodes["sim"].outputs) == ["out"]
    assert list(g.nodes["win"].inputs) == ["in"] and list(g.nodes["win"].outputs) == ["out"]
