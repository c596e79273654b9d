"""Workflow -> zflow dataflow: the trigger becomes a source, processors operators, publishers
sinks; every link carries the whole run context so each step sees all upstream outputs.

:func:`to_dataflow` emits the Zenoh-Flow style descriptor (what ``zflow workflow compile``
prints and ``zflow run`` could run); :func:`to_graph` builds the compiled graph the runtime
and the workflow runner consume, through the dataflow compiler. Placement wishes become ``deploy:`` hints that the scheduler
reads: ``site``/``pool``/``arch`` lists, a ``site_type`` label, ``objectives`` weights and
``resources``; the execution model (warm / on-demand) is node configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zflow.dataflow.graph import Graph
from zflow.workflows.action import IOType
from zflow.workflows.nodes import OUT
from zflow.workflows.workflow import PlannedStep, Workflow

NODES_MODULE = "zflow.workflows.nodes"


def node_kind(wf: Workflow, step: PlannedStep) -> str:
    if step.id == wf.trigger:
        return "source"
    return "sink" if not step.children else "operator"


def deploy_hints(step: PlannedStep) -> dict[str, Any]:
    """Placement wishes in the scheduler's ``deploy:`` vocabulary (site, arch, pool, labels,
    objectives, resources); site types become the ``site_type`` label (a list: any of them)."""
    hints: dict[str, Any] = {}
    c = step.constraints
    if c is not None:
        for field, hint in (("site_list", "site"), ("node_pool_list", "pool"), ("arch_list", "arch")):
            values = getattr(c, field)
            if values:
                hints[hint] = list(values)
        if c.site_type_list:
            types = c.site_type_list
            hints["labels"] = {"site_type": types[0] if len(types) == 1 else list(types)}
    if step.objectives is not None:
        hints["objectives"] = step.objectives.model_dump()
    if step.resources is not None:
        res = step.resources.to_hints()
        if res:
            hints["resources"] = res
    return hints


def _static_values(step: PlannedStep, base: Path) -> dict[str, Any]:
    """Static inputs; file/directory paths are made absolute against the workflow's folder."""
    out = {}
    for name, value in step.static.items():
        io = step.action.input(name)
        if io is not None and io.type in (IOType.FILE, IOType.DIRECTORY) and isinstance(value, str):
            value = str((base / Path(value).expanduser()).resolve())
        out[name] = value
    return out


def step_site(step: PlannedStep, default_site: str = "local", sites: dict[str, str] | None = None) -> str:
    """Where a step runs: as placed (``sites``), else its one constrained site, else the default."""
    return (sites or {}).get(step.id) or step.site or default_site


def node_config(wf: Workflow, step: PlannedStep, default_site: str = "local",
                sites: dict[str, str] | None = None) -> dict[str, Any]:
    site = step_site(step, default_site, sites)
    file_outputs: dict[str, bool] = {}
    for out in step.action.spec.outputs:
        if out.type in (IOType.FILE, IOType.DIRECTORY):
            consumers = [s for s in wf.steps.values()
                         if any(r.step == step.id and r.output == out.name for r in s.refs.values())]
            file_outputs[out.name] = any(step_site(c, default_site, sites) != site for c in consumers)
    cfg: dict[str, Any] = {
        "workflow": wf.name,
        "step": step.id,
        "kind": step.kind,
        "action_dir": str(step.action.directory),
        "action": f"{step.action.id}:{step.action.version}",
        "site": site,
        "static": _static_values(step, Path(wf.file).resolve().parent),
        "refs": {name: str(ref) for name, ref in step.refs.items()},
        "parents": list(step.parents),
        "children": list(step.children),
        "file_outputs": file_outputs,
    }
    extra = [o for o in step.action.spec.outputs if step.action.spec.dynamic_outputs]
    if extra:
        cfg["dynamic_outputs"] = [o.model_dump(mode="json", exclude_none=True) for o in extra]
    if step.kind != "Source":
        if step.resources is not None and step.resources.time_seconds:
            cfg["time_limit_s"] = step.resources.time_seconds
        cfg["execution"] = step.execution
        if step.execution == "on-demand":
            cfg["idle_retention_s"] = step.idle_retention_s
    if step.id == wf.trigger:
        cfg["plan"] = {sid: list(s.parents) for sid, s in wf.steps.items()}
        cfg["results"] = {key: str(ref) for key, ref in wf.results}
    return cfg


def to_dataflow(wf: Workflow, default_site: str = "local", sites: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """The Zenoh-Flow style descriptor of a workflow (YAML-ready); ``sites`` maps step ids to
    the site they were placed on (daemon deployments), overriding constraints and the default."""
    sections: dict[str, list[dict[str, Any]]] = {"sources": [], "operators": [], "sinks": []}
    links = []
    for step in wf.steps.values():
        kind = node_kind(wf, step)
        node: dict[str, Any] = {
            "id": step.id,
            "operator": f"{NODES_MODULE}:{'TriggerNode' if kind == 'source' else 'StepNode'}",
        }
        if step.parents:
            node["inputs"] = list(step.parents)
        if step.children:
            node["outputs"] = [OUT]
        node["configuration"] = node_config(wf, step, default_site, sites)
        hints = deploy_hints(step)
        if hints:
            node["deploy"] = hints
        sections[kind + "s"].append(node)
        for p in step.parents:
            links.append({"from": {"node": p, "output": OUT}, "to": {"node": step.id, "input": p}})
    return {"name": wf.name, "description": f"compiled from workflow {wf.file}",
            **{k: v for k, v in sections.items() if v}, "links": links}


def to_graph(wf: Workflow, instance: str = "main", default_site: str = "local",
             sites: dict[str, str] | None = None) -> Graph:
    """The compiled graph, through the one dataflow compiler (same nodes, links and keys)."""
    from zflow.dataflow.compiler import compile_dict

    return compile_dict(to_dataflow(wf, default_site, sites), base_dir=str(Path(wf.file).resolve().parent),
                        instance=instance, source_file=wf.file)
