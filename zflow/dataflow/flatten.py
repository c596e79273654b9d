"""Reading a dataflow (and its composite files) into the flattened intermediate form.

Composite operators are expanded here: their members get namespaced ids (``stage.clean``),
inherit configuration / QoS / restart / placement from the composite entry, and keep their own
scope for links. Problems found on the way (var errors, model errors, unknown operators,
missing or recursive composite files, bad ids) are collected, never raised, so ``zflow check``
reports everything at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from zflow import keyexprs
from zflow.dataflow import types as port_types
from zflow.dataflow import validate
from zflow.dataflow.builtins import builtin_ports
from zflow.dataflow.graph import RunSpec
from zflow.dataflow.ir import (
    Composite,
    Exposed,
    FlowIR,
    InlineSource,
    Kind,
    LinkDecl,
    Node,
    Port,
    Scope,
    Where,
)
from zflow.dataflow.models import (
    CompositeModel,
    DataflowModel,
    InputRef,
    NodeFileModel,
    NodeModel,
    PortDecl,
)
from zflow.dataflow.targets import TargetError, check_module_attr, resolve_path, resolve_target
from zflow.dataflow.vars import declared_vars, merged_vars, substitute
from zflow.documents import Document, load_document, validation_problems
from zflow.errors import Problem, UserError, did_you_mean

SEP = "."  # namespace separator of flattened ids (also used in keys)
_SECTIONS = ("sources", "operators", "sinks", "links", "inputs", "outputs")
_RUN_FIELDS = ("operator", "library", "uri", "descriptor", "zenoh-subscribers", "zenoh-publishers")
_TIMER = re.compile(r"^(zflow|dora)/timer/(millis|secs|hz)/([0-9]+(?:\.[0-9]+)?)$")


def parse_timer(text: str) -> float | str | None:
    """Period in ms for a timer source, None if ``text`` is not a timer, or an error message."""
    parts = text.split("/")
    if not (parts[0] in ("zflow", "dora") or (len(parts) > 1 and parts[1] == "timer")):
        return None
    m = _TIMER.match(text)
    if not m:
        return (f"bad timer {text!r}: expected zflow/timer/millis/N, zflow/timer/secs/N "
                "or zflow/timer/hz/N (dora/timer/... also works)")
    value = float(m.group(3))
    if value <= 0:
        return f"bad timer {text!r}: the period must be greater than 0"
    unit = m.group(2)
    return value if unit == "millis" else value * 1000.0 if unit == "secs" else 1000.0 / value


def deep_merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """``over`` wins; nested mappings merge key by key."""
    if not over:
        return dict(base)
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _opts(model: BaseModel | None) -> dict[str, Any]:
    return model.model_dump(exclude_none=True) if model is not None else {}


@dataclass
class _Inherited:
    """What a scope's members inherit from the flow and the composite entries around them."""

    config: dict[str, Any]
    qos: dict[str, Any]
    restart: dict[str, Any]
    deploy: dict[str, Any]
    group: str | None
    vars: dict[str, Any]
    chain: tuple[str, ...]  # composite files being expanded (recursion guard)


_BRIDGE_SIDES = {"zenoh-subscribe": "outputs", "zenoh-publish": "inputs"}


class _Builder:
    def __init__(self, ir: FlowIR):
        self.ir = ir
        self.problems = ir.problems
        self._docs: dict[str, Document] = {}
        self.substitute_next = True
        self._index: dict[tuple[int, str], list[int]] = {}
        self._targets: dict[tuple[str, str], RunSpec | TargetError] = {}
        self._broken_ids: set[tuple[int, str]] = set()
        self._var_errors: set[tuple[str | None, tuple[str | int, ...]]] = set()

    def has_var_error(self, where: Where) -> bool:
        """A var under ``where`` could not be filled: skip checks that would only echo it."""
        n = len(where.path)
        return any(f == where.doc.file and p[:n] == where.path for f, p in self._var_errors)

    # -- documents -------------------------------------------------------------------------------
    def _load(self, path: str, where: Where) -> Document | None:
        if path not in self._docs:
            try:
                self._docs[path] = load_document(_display(path))
            except UserError as exc:
                if not os.path.exists(path):
                    folder = os.path.dirname(path)
                    names = [n for n in _listdir(folder) if n.endswith((".yaml", ".yml", ".json"))]
                    self.problems.append(where.problem(f"descriptor file not found: {path}",
                                                       did_you_mean(os.path.basename(path), names)))
                elif not os.path.isfile(path):
                    self.problems.append(where.problem(f"descriptor {path} is a directory, expected a file"))
                else:
                    self.problems.extend(exc.problems)  # YAML errors point into that file
                return None
        return self._docs[path]

    def _prepare(self, doc: Document, model: type[BaseModel], outer_vars: dict[str, Any]) -> tuple[Any, Document, dict[str, Any]]:
        """Substitute vars (file defaults, outer values win) and validate; None on failure."""
        declared, problems = declared_vars(doc)
        values = merged_vars(declared, outer_vars)
        if self.substitute_next:
            sub, var_problems = substitute(doc, values)
        else:
            sub, var_problems = doc, []
        self.substitute_next = True
        self.problems.extend(problems + var_problems)
        self._var_errors.update((sub.file, p.path) for p in var_problems)
        try:
            return model.model_validate(sub.data), sub, values
        except ValidationError as exc:
            self.problems.extend(_tidy(validation_problems(exc, sub, model)))
            return self._salvage(model, sub, exc), sub, values

    def _salvage(self, model: type[BaseModel], doc: Document, exc: ValidationError) -> Any:
        """Validate again without the items that failed, so the semantic checks still run.

        The failed nodes are marked broken (references to them stay quiet) and, if a link was
        dropped, unconnected-input errors are not reported (they would only echo the link).
        Kept items remember their original index so locations stay right.
        """
        if not isinstance(doc.data, dict):
            return None
        drop: dict[str, set[int]] = {}
        data = dict(doc.data)
        for err in exc.errors():
            loc = err["loc"]
            if len(loc) >= 2 and loc[0] in _SECTIONS and isinstance(loc[1], int):
                drop.setdefault(str(loc[0]), set()).add(loc[1])
            elif loc and loc[0] in data and not isinstance(data[loc[0]], list) and loc[0] not in ("name", "flow"):
                data.pop(loc[0])
            else:
                return None
        for section, bad in drop.items():
            items = data.get(section)
            if not isinstance(items, list):
                return None
            kept = [i for i in range(len(items)) if i not in bad]
            self._index[(id(doc), section)] = kept
            data[section] = [items[i] for i in kept]
            for i in bad:
                item = items[i]
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    self._broken_ids.add((id(doc), item["id"]))
            if section == "links" or section in ("inputs", "outputs"):
                self.ir.partial = True
        try:
            return model.model_validate(data)
        except ValidationError:
            return None

    # -- scopes ----------------------------------------------------------------------------------
    def scope(self, scope: Scope, groups: list[tuple[Kind, str, list[NodeModel]]], links: list[Any],
              inh: _Inherited, base_dir: str) -> None:
        seen: dict[str, Where] = {}
        scope.broken.update(nid for d, nid in self._broken_ids if d == id(scope.doc))
        for kind, section, nodes in groups:
            index = self._index.get((id(scope.doc), section))
            for j, node in enumerate(nodes):
                i = index[j] if index else j
                where = Where(scope.doc, (section, i))
                if node.id in seen:
                    first = seen[node.id]
                    self.problems.append(where.at("id").problem(
                        f"duplicate node id '{node.id}'",
                        f"first declared at {first.doc.file or '<flow>'}:{first.doc.line_of(first.path)}"))
                    continue
                seen[node.id] = where
                self._check_id(node.id, where.at("id"))
                member = self.node(scope, kind, node, where, inh, base_dir)
                if member is not None:
                    scope.members[node.id] = member
                else:
                    scope.broken.add(node.id)
        index = self._index.get((id(scope.doc), "links"))
        for j, link in enumerate(links):
            i = index[j] if index else j
            scope.links.append(LinkDecl(link.from_.node, link.from_.output, link.to.node, link.to.input,
                                        Where(scope.doc, ("links", i)), _opts(link.qos)))

    def _check_id(self, text: str, where: Where) -> None:
        try:
            keyexprs.chunk(text, "node id")
        except UserError as exc:
            self.problems.append(where.problem(exc.problems[0].message))
            return
        if SEP in text:
            self.problems.append(where.problem(f"node id {text!r} contains '{SEP}'",
                                               f"'{SEP}' separates composite members in flattened ids"))

    def _check_port(self, text: str, where: Where) -> bool:
        try:
            keyexprs.chunk(text, "port")
        except UserError as exc:
            self.problems.append(where.problem(exc.problems[0].message))
            return False
        return True

    # -- nodes -----------------------------------------------------------------------------------
    def node(self, scope: Scope, kind: Kind, node: NodeModel, where: Where, inh: _Inherited,
             base_dir: str) -> Node | Composite | None:
        if self.has_var_error(where):
            return None
        data = scope.doc.data
        for part in where.path:
            data = data[part]
        present = [f for f in _RUN_FIELDS if data.get(f) is not None]
        script = (node.configuration or {}).get("python-script")
        if script and node.library and not node.library.endswith(".py"):
            present.remove("library")  # Zenoh-Flow python: wrapper library + python-script
        if len(present) > 1:
            self.problems.append(where.at(present[1]).problem(
                f"node '{node.id}' sets both '{present[0]}' and '{present[1]}'", "set exactly one"))
            return None
        if kind != "source" and node.zenoh_subscribers is not None:
            self.problems.append(where.at("zenoh-subscribers").problem(
                f"zenoh-subscribers is only for sources ('{node.id}' is a{'n' if kind == 'operator' else ''} {kind})"))
            return None
        if kind != "sink" and node.zenoh_publishers is not None:
            self.problems.append(where.at("zenoh-publishers").problem(
                f"zenoh-publishers is only for sinks ('{node.id}' is a{'n' if kind == 'operator' else ''} {kind})"))
            return None
        if node.descriptor is not None:
            return self.descriptor(scope, kind, node, where, inh, base_dir)
        return self.leaf(scope, kind, node, where, inh, base_dir, present, script)

    def leaf(self, scope: Scope, kind: Kind, node: NodeModel | NodeFileModel, where: Where,
             inh: _Inherited, base_dir: str, present: list[str], script: Any,
             entry: NodeModel | None = None, entry_where: Where | None = None) -> Node:
        config = deep_merge(inh.config, node.configuration)
        if entry is not None:
            config = deep_merge(config, entry.configuration)
        config.pop("python-script", None)
        own = entry or node
        n = Node(id=scope.prefix + own.id if own.id else "", local=own.id or "", kind=kind, where=where,
                 scope=scope, config=config, base_dir=base_dir)
        if isinstance(own, NodeModel):
            n.qos = deep_merge(inh.qos, _opts(own.qos))
            n.restart = deep_merge(inh.restart, _opts(own.restart))
            n.deploy = deep_merge(inh.deploy, own.deploy)
            daemon = (own.deploy or {}).get("daemon")
            if daemon is not None:
                try:
                    keyexprs.chunk(str(daemon), "daemon id")
                except UserError as exc:
                    self.problems.append((entry_where or where).at("deploy", "daemon").problem(exc.problems[0].message))
            n.group = inh.group
            if own.group is not None:
                self._check_port(own.group, (entry_where or where).at("group"))
                n.group = (inh.group + SEP if inh.group else scope.prefix) + own.group
        else:
            n.qos, n.restart, n.deploy, n.group = dict(inh.qos), dict(inh.restart), dict(inh.deploy), inh.group
        n.run = self.run(node, where, base_dir, present, script)
        self.ports(n, node, where)
        if entry is not None and entry.inputs is not None and entry_where is not None:
            self.ports(n, entry, entry_where, outputs=False)
        if n.run is not None and n.run.kind == "builtin":
            self._builtin_rules(n, node, where)
        if entry_where is not None:
            n.where = entry_where
        self.problems += validate.node_shape_problems(n, n.where)
        self.ir.nodes[n.id] = n
        return n

    def run(self, node: NodeModel | NodeFileModel, where: Where, base_dir: str, present: list[str],
            script: Any) -> RunSpec | None:
        if node.zenoh_subscribers is not None:
            return self._zenoh(node.zenoh_subscribers, "zenoh-subscriber", where.at("zenoh-subscribers"))
        if node.zenoh_publishers is not None:
            return self._zenoh(node.zenoh_publishers, "zenoh-publisher", where.at("zenoh-publishers"))
        if script:
            text, at = str(script), where.at("configuration", "python-script")
        elif present:
            text, at = str(getattr(node, present[0])), where.at(present[0])
        else:
            self.problems.append(where.problem(
                f"node '{node.id}' does not say what it runs",
                "add operator: ./file.py, ./file.py:Class, pkg.module:Class or a built-in name"))
            return None
        key = (text, base_dir)
        if key not in self._targets:
            try:
                self._targets[key] = resolve_target(text, base_dir)
            except TargetError as exc:
                self._targets[key] = exc
        found = self._targets[key]
        if isinstance(found, TargetError):
            self.problems.append(at.problem(found.message, found.hint))
            return None
        return found

    def _zenoh(self, keys: dict[str, str], kind: str, where: Where) -> RunSpec:
        if not keys:
            self.problems.append(where.problem(f"no ports: expected {{port: key/expression}} for the {kind}"))
        for port, key in keys.items():
            if self._check_port(port, where.at(port)):
                error = keyexprs.user_key_error(key)
                if not error and kind == "zenoh-publisher" and "*" in key:
                    error = f"key expression {key!r}: a publisher needs a key without wildcards"
                if error:
                    self.problems.append(where.at(port).problem(error))
        return RunSpec(kind=kind, keys=dict(keys))  # type: ignore[arg-type]

    def ports(self, n: Node, node: NodeModel | NodeFileModel, where: Where, outputs: bool = True) -> None:
        run = n.run
        declared_in = node.inputs
        if run is not None and run.kind == "zenoh-publisher" and declared_in is None:
            declared_in = list(run.keys)
        if isinstance(declared_in, dict):
            n.inputs, n.inline, n.timers = {}, {}, {}
            for port, ref in declared_in.items():
                at = where.at("inputs", port)
                if not self._check_port(port, at):
                    continue
                ref_model = ref if isinstance(ref, InputRef) else InputRef(source=ref)
                n.inputs[port] = Port(port, self._type(ref_model.type, at.at("type"), n.base_dir), at, _opts(ref_model.qos))
                timer = parse_timer(ref_model.source)
                if isinstance(timer, str):
                    self.problems.append(at.problem(timer))
                    n.timers[port] = -1.0  # meant as a timer: no further errors for this port
                elif timer is not None:
                    n.timers[port] = timer
                else:
                    n.inline[port] = InlineSource(ref_model.source, at if isinstance(ref, str) else at.at("source"))
        elif declared_in is not None:
            n.inputs = self._port_list(declared_in, where.at("inputs"), n.base_dir)
        declared_out = node.outputs if outputs else None
        if outputs and run is not None and run.kind == "zenoh-subscriber" and declared_out is None:
            declared_out = list(run.keys)
        if declared_out is not None:
            n.outputs = self._port_list(declared_out, where.at("outputs"), n.base_dir)

    def _builtin_rules(self, n: Node, node: NodeModel | NodeFileModel, where: Where) -> None:
        """Built-ins get their default ports when none are declared; their configuration is
        checked now (validate.py) rather than when the node starts."""
        assert n.run is not None
        defaults = builtin_ports(n.run.target)
        keys = n.config.get("keys")
        if n.run.target in _BRIDGE_SIDES and isinstance(keys, dict):  # one port per key expression
            defaults = {_BRIDGE_SIDES[n.run.target]: [str(k) for k in keys]}
        if node.inputs is None and defaults.get("inputs"):
            n.inputs = self._port_list(list(defaults["inputs"]), where.at("inputs"), n.base_dir)
        if node.outputs is None and defaults.get("outputs") and n.kind != "sink":
            n.outputs = self._port_list(list(defaults["outputs"]), where.at("outputs"), n.base_dir)
        own = set(node.configuration) if isinstance(node.configuration, dict) else set()
        self.problems += validate.builtin_config_problems_at(n, own, where)

    def _port_list(self, items: list[str | PortDecl], where: Where, base_dir: str) -> dict[str, Port]:
        out: dict[str, Port] = {}
        for i, item in enumerate(items):
            name, type_ = (item, None) if isinstance(item, str) else (item.id, item.type)
            at = where.at(i)
            if not self._check_port(name, at if isinstance(item, str) else at.at("id")):
                continue
            if name in out:
                self.problems.append(at.problem(f"duplicate port '{name}'"))
                continue
            qos = _opts(item.qos) if isinstance(item, PortDecl) else {}
            if qos and where.path[-1] == "outputs":
                self.problems.append(at.at("qos").problem(
                    "qos belongs to inputs (or links)", "set it on the consuming input or the link"))
            out[name] = Port(name, self._type(type_, at.at("type"), base_dir), at, qos)
        return out

    def _type(self, text: str | None, where: Where, base_dir: str = ".") -> str | None:
        canonical, error, hint = port_types.normalize(text)
        if error:
            self.problems.append(where.problem(error, hint))
        elif canonical and canonical.startswith("model:"):
            _, module, attr = canonical.split(":")
            try:
                check_module_attr(module, attr, base_dir)
            except TargetError as exc:
                self.problems.append(where.problem(f"port type {canonical}: {exc.message}", exc.hint))
        return canonical

    # -- composites and node files ---------------------------------------------------------------
    def descriptor(self, scope: Scope, kind: Kind, entry: NodeModel, where: Where, inh: _Inherited,
                   base_dir: str) -> Node | Composite | None:
        path = resolve_path(str(entry.descriptor), base_dir)
        at = where.at("descriptor")
        if path in inh.chain:
            chain = " -> ".join(os.path.basename(p) for p in (*inh.chain, path))
            self.problems.append(at.problem(f"composite recursion: {chain}",
                                            "a composite cannot include itself, directly or indirectly"))
            return None
        doc = self._load(path, at)
        if doc is None:
            return None
        if not isinstance(doc.data, dict):
            self.problems.append(at.problem(
                f"descriptor {_display(path)} is {'empty' if doc.data is None else 'not a mapping'}",
                "expected a composite operator (operators, links, inputs, outputs) or a node descriptor"))
            return None
        data = doc.data
        inner_dir = os.path.dirname(path)
        if "operators" in data or "links" in data or "sources" in data or "sinks" in data:
            if kind != "operator" or "sources" in data or "sinks" in data:
                self.problems.append(at.problem(
                    "composite descriptors can only be operators (with operators, links, inputs, outputs)"))
                return None
            model, sub, values = self._prepare(doc, CompositeModel, inh.vars)
            if model is None:
                return None
            return self.composite(scope, entry, where, model, sub, values, inh, path, inner_dir)
        model, sub, _ = self._prepare(doc, NodeFileModel, inh.vars)
        if model is None:
            return None
        present = [f for f in _RUN_FIELDS if sub.data.get(f) is not None]
        script = (model.configuration or {}).get("python-script") or (entry.configuration or {}).get("python-script")
        if script and "library" in present and not str(model.library).endswith(".py"):
            present.remove("library")
        file_where = Where(sub, ())
        if len(present) > 1 or "descriptor" in present:
            self.problems.append(file_where.at(present[-1]).problem(
                f"a node descriptor sets {' and '.join(repr(p) for p in present)}", "set exactly one"))
            return None
        for field, allowed in (("zenoh-subscribers", "source"), ("zenoh-publishers", "sink")):
            if field in present and kind != allowed:
                self.problems.append(at.problem(f"{_display(path)} declares {field}, which is only for {allowed}s"))
                return None
        return self.leaf(scope, kind, model, file_where, inh, inner_dir, present, script,
                         entry=entry, entry_where=where)

    def composite(self, scope: Scope, entry: NodeModel, where: Where, model: CompositeModel, doc: Document,
                  values: dict[str, Any], inh: _Inherited, path: str, inner_dir: str) -> Composite:
        cid = scope.prefix + entry.id
        inner_scope = Scope(prefix=cid + SEP, doc=doc)
        # flow config < composite file config < composite entry config < inner node config
        config = deep_merge(deep_merge(inh.config, model.configuration), entry.configuration)
        group = inh.group
        if entry.group is not None:
            self._check_port(entry.group, where.at("group"))
            group = (inh.group + SEP if inh.group else scope.prefix) + entry.group
        inner = _Inherited(
            config=config,
            qos=deep_merge(inh.qos, _opts(entry.qos)),
            restart=deep_merge(inh.restart, _opts(entry.restart)),
            deploy=deep_merge(inh.deploy, entry.deploy),
            group=group,
            vars=values,
            chain=(*inh.chain, path),
        )
        self.scope(inner_scope, [("operator", "operators", model.operators)], model.links, inner, inner_dir)
        comp = Composite(local=entry.id, id=cid, where=where, scope=inner_scope)
        exposed: list[tuple[str, dict[str, Exposed], list[tuple[str, str, str]]]] = [
            ("inputs", comp.inputs, [(x.id, x.node, x.input) for x in model.inputs]),
            ("outputs", comp.outputs, [(x.id, x.node, x.output) for x in model.outputs]),
        ]
        for field, table, items in exposed:
            for i, (pid, inner_node, inner_port) in enumerate(items):
                at = Where(doc, (field, i))
                if pid in table:
                    self.problems.append(at.at("id").problem(f"duplicate composite {field[:-1]} '{pid}'"))
                    continue
                self._check_port(pid, at.at("id"))
                table[pid] = Exposed(pid, inner_node, inner_port, at)
        if entry.inputs is not None or entry.outputs is not None:
            self.problems.append(where.problem(
                f"composite '{entry.id}' takes its ports from {os.path.basename(path)}",
                "remove inputs/outputs here; expose ports in the composite file"))
        return comp


def _tidy(problems: list[Problem]) -> list[Problem]:
    """Model problems as a person wants them: a misspelt required field gives 'unknown field x
    (did you mean y?)' and 'y missing', keep the first (it fixes both); drop pydantic's
    'value error, ' prefix from our own validators' messages."""
    prefix = "did you mean '"
    meant = {(*p.path[:-1], p.hint[len(prefix):-2]) for p in problems
             if p.message == "unknown field" and p.hint and p.hint.startswith(prefix)}
    return [replace(p, message=p.message.removeprefix("value error, ")) for p in problems
            if not (p.message == "required field is missing" and p.path in meant)]


def _display(path: str) -> str:
    """A path as a person reads it in messages: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def build(doc: Document, base_dir: str, cli_vars: dict[str, Any] | None = None,
          substitute_root: bool = True) -> FlowIR:
    """Read a dataflow document (composites included) into a :class:`FlowIR` with its problems.

    ``substitute_root=False`` leaves the top document's strings alone (generated descriptors
    may carry user text with ``{{ }}`` in their configuration); composite files still get vars.
    """
    ir = FlowIR(name="", root=Scope(prefix="", doc=doc), source_file=doc.file)
    builder = _Builder(ir)
    builder.substitute_next = substitute_root
    if not isinstance(doc.data, dict):
        ir.problems.append(doc.problem((), "expected a mapping with name, sources, operators, sinks, links"))
        return ir
    model, sub, values = builder._prepare(doc, DataflowModel, dict(cli_vars or {}))
    ir.vars = {k: v for k, v in values.items() if v is not None}
    ir.root.doc = sub
    if model is None:
        return ir
    ir.name = model.name or model.flow or ""
    if not ir.name:
        ir.problems.append(sub.problem(("name",), "required field 'name' is missing", "name: my-flow"))
    else:
        try:
            keyexprs.chunk(ir.name, "flow name")
        except UserError as exc:
            ir.problems.append(sub.problem(("name" if model.name else "flow",), exc.problems[0].message))
    ir.qos = _opts(model.qos)
    ir.restart = _opts(model.restart)
    inh = _Inherited(config=dict(model.configuration or {}), qos=dict(ir.qos), restart=dict(ir.restart),
                     deploy={}, group=None, vars=values,
                     chain=(os.path.abspath(doc.file),) if doc.file else ())
    sections: list[tuple[Kind, str, list[NodeModel]]] = [
        ("source", "sources", model.sources), ("operator", "operators", model.operators), ("sink", "sinks", model.sinks)]
    builder.scope(ir.root, sections, model.links, inh, base_dir)
    _apply_mapping(ir, model.mapping or {}, sub)
    return ir


def _apply_mapping(ir: FlowIR, mapping: dict[str, list[str]], doc: Document) -> None:
    """Zenoh-Flow ``mapping: {daemon: [node ids]}`` -> ``deploy.daemon`` on those (leaf) nodes."""
    placed: dict[str, str] = {}
    for daemon, ids in mapping.items():
        try:
            keyexprs.chunk(daemon, "daemon id")
        except UserError as exc:
            ir.problems.append(doc.problem(("mapping", daemon), exc.problems[0].message))
            continue
        for i, nid in enumerate(ids):
            at = ("mapping", daemon, i)
            member = ir.root.members.get(nid)
            if member is None and nid in ir.root.broken:
                continue
            if member is None:
                ir.problems.append(doc.problem(at, f"mapping names unknown node '{nid}'",
                                               did_you_mean(nid, ir.root.members)))
                continue
            if nid in placed and placed[nid] != daemon:
                ir.problems.append(doc.problem(at, f"node '{nid}' is mapped to both '{placed[nid]}' and '{daemon}'"))
                continue
            placed[nid] = daemon
            prefix = member.id + SEP if isinstance(member, Composite) else None
            for leaf in ir.nodes.values():
                if leaf.id == member.id or (prefix and leaf.id.startswith(prefix)):
                    leaf.deploy.setdefault("daemon", daemon)


__all__ = ["SEP", "build", "deep_merge", "parse_timer"]
