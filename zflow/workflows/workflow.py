"""The workflow format: a DAG of Ryax actions with exactly one trigger, validated into a plan.

```yaml
apiVersion: ryax.tech/v2.0
kind: Workflows
spec:
  id: machining                 # key-safe name (default: the file name)
  human_name: Machining cell anomalies
  actions_path: [../actions]    # extra folders to find actions by id
  actions:
    - id: tick                  # step id
      from: emit-every          # a library id, or a directory path (./my-action)
      version: "1.0"            # optional
      inputs: {interval: 0.1s}
    - id: read
      from: csv-reader
      inputs:
        path: /data/cell.csv                     # static value
        trigger_time: {reference_value: tick.time}   # any upstream step's output
      constraints: {site_list: [edge-1], arch_list: [arm64]}
      objectives: {performance: 50, energy: 100, cost: 30}
      execution: on-demand      # or warm (default); idle_retention: 30s
  results:
    - {key: anomalies, value: detect.count}
```

Edges come from references and from ``streams_to``; a step with neither follows the trigger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zflow.documents import Document, load_document, validate
from zflow.errors import Problem, UserError, did_you_mean
from zflow.workflows.action import (
    Action,
    ActionIO,
    DynamicOutput,
    IOType,
    Resources,
    coerce_static,
    parse_duration,
    text_version,
)
from zflow.workflows.library import Library, search_path

STEP_ID = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$"
DEFAULT_RETENTION_S = 30.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Constraints(_Strict):
    """Hard placement constraints (Ryax): any listed value is acceptable."""

    site_list: list[str] = Field(default_factory=list)
    site_type_list: list[str] = Field(default_factory=list)
    node_pool_list: list[str] = Field(default_factory=list)
    arch_list: list[str] = Field(default_factory=list)


class Objectives(_Strict):
    """Soft placement objectives (Ryax): weights, higher means more important."""

    performance: float = Field(0.0, ge=0)
    energy: float = Field(0.0, ge=0)
    cost: float = Field(0.0, ge=0)


class Step(_Strict):
    id: str = Field(pattern=STEP_ID, max_length=64)
    from_: str = Field(alias="from", description="library action id, or a directory path")
    version: str | None = None
    custom_name: str | None = None
    position: dict[str, Any] | None = None  # Ryax studio layout, ignored
    inputs: dict[str, Any] = Field(default_factory=dict)
    streams_to: list[str] = Field(default_factory=list)
    constraints: Constraints | None = None
    objectives: Objectives | None = None
    resources: Resources | None = None
    dynamic_outputs: list[DynamicOutput] = Field(default_factory=list)
    execution: Literal["warm", "on-demand"] | None = None
    idle_retention: str | float | None = None

    _version_text = field_validator("version", mode="before")(text_version)

    @field_validator("idle_retention")
    @classmethod
    def _retention(cls, v: Any) -> Any:
        if v is not None:
            parse_duration(v)
        return v


class Result(_Strict):
    key: str = Field(min_length=1)
    value: str = Field(description="step.output")
    description: str | None = None


class WorkflowSpec(_Strict):
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", max_length=64)
    human_name: str | None = None
    description: str | None = None
    actions_path: list[str] = Field(default_factory=list)
    actions: list[Step] = Field(min_length=1)
    results: list[Result] = Field(default_factory=list)


class WorkflowFile(_Strict):
    apiVersion: Literal["ryax.tech/v2.0"] = "ryax.tech/v2.0"
    kind: Literal["Workflows"] = "Workflows"
    spec: WorkflowSpec


# ---- the validated plan -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"


@dataclass
class PlannedStep:
    id: str
    action: Action
    static: dict[str, Any]
    refs: dict[str, Ref]
    parents: list[str]
    children: list[str] = field(default_factory=list)
    ancestors: set[str] = field(default_factory=set)
    constraints: Constraints | None = None
    objectives: Objectives | None = None
    resources: Resources | None = None
    execution: str = "warm"
    idle_retention_s: float = DEFAULT_RETENTION_S
    line: int | None = None

    @property
    def kind(self) -> str:
        return self.action.kind

    @property
    def site(self) -> str | None:
        """The step's site when the constraints pin exactly one."""
        if self.constraints and len(self.constraints.site_list) == 1:
            return self.constraints.site_list[0]
        return None


@dataclass
class Workflow:
    name: str
    human_name: str
    file: str
    trigger: str
    steps: dict[str, PlannedStep]  # in topological order, trigger first
    results: list[tuple[str, Ref]]

    def order(self) -> list[str]:
        return list(self.steps)


_REF = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_\-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")

# reference compatibility: output type -> input types it may feed
_COMPATIBLE: dict[IOType, set[IOType]] = {
    IOType.STRING: {IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD, IOType.ENUM},
    IOType.LONGSTRING: {IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD},
    IOType.PASSWORD: {IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD},
    IOType.ENUM: {IOType.STRING, IOType.LONGSTRING, IOType.ENUM},
    IOType.INTEGER: {IOType.INTEGER, IOType.FLOAT},
    IOType.FLOAT: {IOType.FLOAT},
    IOType.BOOLEAN: {IOType.BOOLEAN},
    IOType.FILE: {IOType.FILE},
    IOType.DIRECTORY: {IOType.DIRECTORY},
    IOType.TABLE: {IOType.TABLE},
    IOType.BYTES: {IOType.BYTES},
}


def _parse_ref(text: Any) -> tuple[str, str] | None:
    m = _REF.match(str(text)) if isinstance(text, str) else None
    return (m.group(1), m.group(2)) if m else None


class _Planner:
    def __init__(self, wf: WorkflowFile, doc: Document, base: Path, library: Library | None):
        self.wf, self.doc, self.base = wf, doc, base
        extra = [(base / p) for p in wf.spec.actions_path]
        self.library = library or Library(search_path(extra))
        self.problems: list[Problem] = []

    def err(self, path: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        self.problems.append(self.doc.problem(("spec", *path), message, hint))

    def resolve_action(self, i: int, step: Step) -> Action | None:
        ref = step.from_
        looks_like_path = ref.startswith((".", "/", "~")) or "/" in ref
        if looks_like_path:
            d = (self.base / ref).expanduser()
            try:
                return self.library.load(d)
            except UserError as exc:
                for p in exc.problems:
                    self.problems.append(p)
                self.err(("actions", i, "from"), f"action directory {ref!r} is not a valid action")
                return None
        action = self.library.find(ref, step.version)
        if action is None:
            versions = self.library.versions(ref)
            broken = self.library.broken(ref)
            if broken and not versions:
                for directory, error in broken:
                    self.problems += error.problems
                    self.err(("actions", i, "from"), f"action {ref!r} in {directory} is not a valid action "
                                                     "(see its errors)")
            elif versions:
                self.err(("actions", i, "version"), f"action {ref!r} has no version {step.version!r}",
                         f"available: {', '.join(versions)}")
            else:
                self.err(("actions", i, "from"), f"unknown action {ref!r}",
                         did_you_mean(ref, self.library.ids()) or
                         f"known actions: {', '.join(self.library.ids()) or 'none'}; or give a directory path")
        return action

    def plan(self) -> Workflow:
        spec = self.wf.spec
        actions: dict[str, Action] = {}
        steps_by_id: dict[str, tuple[int, Step]] = {}
        for i, step in enumerate(spec.actions):
            if step.id in steps_by_id:
                self.err(("actions", i, "id"), f"duplicate step id {step.id!r} "
                         f"(first at actions[{steps_by_id[step.id][0]}])")
                continue
            steps_by_id[step.id] = (i, step)
            action = self.resolve_action(i, step)
            if action is not None and step.dynamic_outputs:
                if not action.spec.dynamic_outputs:
                    self.err(("actions", i, "dynamic_outputs"),
                             f"action {action.id!r} has no dynamic outputs (its metadata sets dynamic_outputs: true)")
                else:
                    action = action.with_dynamic_outputs(list(step.dynamic_outputs))
            if action is not None:
                actions[step.id] = action

        triggers = [sid for sid, a in actions.items() if a.is_trigger]
        if len(steps_by_id) == len(actions):  # only judge triggers when every action resolved
            if not triggers:
                self.err(("actions",), "a workflow needs exactly one trigger (an action of kind Source); found none",
                         "start the workflow with a trigger such as emit-every")
            elif len(triggers) > 1:
                i = steps_by_id[triggers[1]][0]
                self.err(("actions", i, "from"),
                         f"a workflow has exactly one trigger; {', '.join(repr(t) for t in triggers)} are all triggers")
        trigger = triggers[0] if triggers else None

        parents: dict[str, list[str]] = {sid: [] for sid in steps_by_id}
        static: dict[str, dict[str, Any]] = {sid: {} for sid in steps_by_id}
        refs: dict[str, dict[str, Ref]] = {sid: {} for sid in steps_by_id}

        for sid, (i, step) in steps_by_id.items():
            for j, target in enumerate(step.streams_to):
                if target not in steps_by_id:
                    self.err(("actions", i, "streams_to", j), f"unknown step {target!r}",
                             did_you_mean(target, steps_by_id))
                elif sid not in parents[target]:
                    parents[target].append(sid)

        for sid, (i, step) in steps_by_id.items():
            action = actions.get(sid)
            if action is None:
                continue
            names = [io.name for io in action.spec.inputs]
            for name, raw in step.inputs.items():
                io = action.input(name)
                path: tuple[str | int, ...] = ("actions", i, "inputs", name)
                if io is None:
                    self.err(path, f"action {action.id!r} has no input {name!r}",
                             did_you_mean(name, names) or f"inputs: {', '.join(names) or 'none'}")
                    continue
                if isinstance(raw, dict) and set(raw) <= {"reference_value", "static_value"} and raw:
                    if "reference_value" in raw and "static_value" in raw:
                        self.err(path, "give either static_value or reference_value, not both")
                        continue
                    if "reference_value" in raw:
                        self.bind_ref(sid, i, name, io, raw["reference_value"], steps_by_id, actions,
                                      refs, parents, (*path, "reference_value"))
                        continue
                    raw = raw["static_value"]
                    path = (*path, "static_value")
                try:
                    static[sid][name] = coerce_static(io, raw)
                except ValueError as exc:
                    self.err(path, f"input {name!r} ({io.type.value}): {exc}")
            for io in action.spec.inputs:
                if io.name not in step.inputs and io.required:
                    self.err(("actions", i, "inputs"),
                             f"required input {io.name!r} ({io.type.value}) of action {action.id!r} has no value",
                             "give a static value or a reference_value: step.output")
            if action.is_trigger and refs[sid]:
                self.err(("actions", i, "inputs"), "a trigger starts the workflow: its inputs must be static values")
            if action.is_trigger and step.execution is not None:
                self.err(("actions", i, "execution"), "a trigger always runs (long-running); execution is for processors")

        if trigger is not None:
            for sid in steps_by_id:
                if sid != trigger and not parents[sid]:
                    parents[sid].append(trigger)
            if parents[trigger]:
                i = steps_by_id[trigger][0]
                self.err(("actions", i), f"the trigger {trigger!r} cannot have upstream steps "
                         f"(fed by {', '.join(parents[trigger])})")

        order = self.toposort(parents, steps_by_id)
        if order is not None:
            anc: dict[str, set[str]] = {}
            for sid in order:
                anc[sid] = set(parents[sid]).union(*(anc[p] for p in parents[sid])) if parents[sid] else set()
                # an output of a step that is already upstream of another parent arrives in that
                # parent's run context: keep only the direct edges (transitive reduction)
                parents[sid] = [p for p in parents[sid]
                                if not any(p in anc[q] for q in parents[sid] if q != p)]
            for sid, bound in refs.items():
                i = steps_by_id[sid][0]
                for name, ref in bound.items():
                    if ref.step not in anc[sid]:
                        self.err(("actions", i, "inputs", name), f"{ref} is not upstream of step {sid!r}")

        results: list[tuple[str, Ref]] = []
        for k, res in enumerate(spec.results):
            parsed = _parse_ref(res.value)
            if parsed is None:
                self.err(("results", k, "value"), f"{res.value!r} must be step.output")
                continue
            found = self.check_ref_target(parsed, steps_by_id, actions, ("results", k, "value"))
            if found is not None:
                results.append((res.key, found))

        if self.problems:
            raise UserError(self.problems)
        assert order is not None and trigger is not None
        planned: dict[str, PlannedStep] = {}
        for sid in order:
            i, step = steps_by_id[sid]
            action = actions[sid]
            planned[sid] = PlannedStep(
                id=sid, action=action, static=static[sid], refs=refs[sid], parents=parents[sid],
                ancestors=anc[sid], constraints=step.constraints, objectives=step.objectives,
                resources=step.resources or action.spec.resources,
                execution=step.execution or "warm",
                idle_retention_s=parse_duration(step.idle_retention) if step.idle_retention is not None
                else DEFAULT_RETENTION_S,
                line=self.doc.line_of(("spec", "actions", i)))
        for sid, ps in planned.items():
            for p in ps.parents:
                planned[p].children.append(sid)
        name = spec.id or re.sub(r"[^A-Za-z0-9_.\-]", "-", Path(self.doc.file or "workflow").stem)
        return Workflow(name=name, human_name=spec.human_name or name, file=str(self.doc.file),
                        trigger=trigger, steps=planned, results=results)

    def check_ref_target(self, parsed: tuple[str, str], steps_by_id: dict[str, tuple[int, Step]],
                         actions: dict[str, Action], path: tuple[str | int, ...]) -> Ref | None:
        step_id, output = parsed
        if step_id not in steps_by_id:
            self.err(path, f"unknown step {step_id!r}", did_you_mean(step_id, steps_by_id))
            return None
        action = actions.get(step_id)
        if action is None:
            return None
        if action.spec.dynamic_outputs and not self.wf.spec.actions[steps_by_id[step_id][0]].dynamic_outputs:
            return Ref(step_id, output)  # outputs defined elsewhere (e.g. a form): checked at run time
        if action.output(output) is None:
            outs = [o.name for o in action.spec.outputs]
            self.err(path, f"step {step_id!r} ({action.id}) has no output {output!r}",
                     did_you_mean(output, outs) or f"outputs: {', '.join(outs) or 'none'}")
            return None
        return Ref(step_id, output)

    def bind_ref(self, sid: str, i: int, name: str, io: ActionIO, text: Any,
                 steps_by_id: dict[str, tuple[int, Step]], actions: dict[str, Action],
                 refs: dict[str, dict[str, Ref]], parents: dict[str, list[str]],
                 path: tuple[str | int, ...]) -> None:
        parsed = _parse_ref(text)
        if parsed is None:
            self.err(path, f"reference {text!r} must be step.output (e.g. tick.time)")
            return
        ref = self.check_ref_target(parsed, steps_by_id, actions, path)
        if ref is None:
            return
        if ref.step == sid:
            self.err(path, f"step {sid!r} cannot use its own output {ref}")
            return
        src = actions[ref.step]
        out = src.output(ref.output)
        if out is not None and io.type not in _COMPATIBLE[out.type]:
            self.err(path, f"type mismatch: {ref} is {out.type.value} but input {name!r} is {io.type.value}")
            return
        refs[sid][name] = ref
        if ref.step not in parents[sid]:
            parents[sid].append(ref.step)

    def toposort(self, parents: dict[str, list[str]], steps_by_id: dict[str, tuple[int, Step]]) -> list[str] | None:
        order: list[str] = []
        state: dict[str, int] = {}
        stack_path: list[str] = []

        def visit(n: str) -> bool:
            if state.get(n) == 2:
                return True
            if state.get(n) == 1:
                cycle = [*stack_path[stack_path.index(n):], n]
                self.err(("actions", steps_by_id[n][0]), f"cycle between steps: {' -> '.join(reversed(cycle))}")
                return False
            state[n] = 1
            stack_path.append(n)
            for p in parents[n]:
                if not visit(p):
                    return False
            stack_path.pop()
            state[n] = 2
            order.append(n)
            return True

        for n in steps_by_id:
            if not visit(n):
                return None
        return order


def load_workflow(path: str | Path, library: Library | None = None) -> Workflow:
    """Load, validate and plan a workflow file; all problems at once, with file and line."""
    doc = load_document(path)
    wf = validate(WorkflowFile, doc)
    return _Planner(wf, doc, Path(path).resolve().parent, library).plan()
