"""Semantic checks on a flattened flow: node shapes, built-in configuration, connections,
directions, port types. (``flatten.py`` only builds; what it builds is judged here.)

Per node, called by the builder as each leaf is made (so problems keep document order): a
source has outputs and only timer inputs, a sink inputs and no outputs, a Zenoh bridge's ports
match its key expressions, a built-in's configuration is what it accepts.

Resolves every link (both syntaxes, through composite ports) to an :class:`~zflow.dataflow.ir.Edge`
between leaf nodes and reports, all at once: unknown nodes/ports (with did-you-mean), links
out of sinks or into sources, composite ports pointing nowhere, inputs connected twice or not
at all, and port types that do not fit across a link.

Cycles fed by a source are allowed on purpose: feedback loops (a controller reading its plant's
output) are ordinary in streaming. The input that closes each cycle is a *feedback* input (see
:func:`feedback_inputs`); it does not hold its node open at end of stream, which is how such a
flow ends (docs/dataflow.md, "Cycles"). A cycle that nothing feeds could never start nor end,
so it is refused, naming its nodes and links.
"""

from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass

from zflow.dataflow import types as port_types
from zflow.dataflow.builtins import builtin_config_problems
from zflow.dataflow.ir import Composite, Edge, Exposed, FlowIR, Node, Scope, Where
from zflow.errors import Problem, did_you_mean

End = tuple[str, str]  # (leaf node id, port)


def node_shape_problems(n: Node, where: Where) -> list[Problem]:
    """What a leaf node's kind forbids in its ports (see the module docstring)."""
    out = []
    run = n.run
    if run is not None and run.kind in ("zenoh-subscriber", "zenoh-publisher"):
        ports = n.outputs if run.kind == "zenoh-subscriber" else n.inputs
        field = "outputs" if run.kind == "zenoh-subscriber" else "inputs"
        if set(ports) != set(run.keys):
            out.append(where.at(field).problem(
                f"{field} of '{n.local}' must match the ports of {run.kind}s: {sorted(run.keys)}"))
    if n.kind == "source":
        for port in n.inputs:
            if port not in n.timers:
                out.append(n.inputs[port].where.problem(
                    f"source '{n.local}' cannot have input '{port}'",
                    "sources only take timer inputs; make it an operator"))
        if not n.outputs:
            out.append(where.problem(f"source '{n.local}' has no outputs", "add outputs: [out]"))
    if n.kind == "sink":
        if n.outputs:
            out.append(where.at("outputs").problem(f"sink '{n.local}' cannot have outputs", "make it an operator"))
        if not n.inputs:
            out.append(where.problem(f"sink '{n.local}' has no inputs", "add inputs: [in]"))
    return out


def builtin_config_problems_at(n: Node, own: set[str], where: Where) -> list[Problem]:
    """A built-in node's configuration problems, placed on the key the node itself wrote
    (``own``: its configuration keys), else on its ``configuration`` (an inherited value)."""
    assert n.run is not None
    out = []
    for loc, message in builtin_config_problems(n.run.target, n.config):
        at = where.at("configuration", *loc) if loc and loc[0] in own else where.at("configuration")
        key = ".".join(str(p) for p in loc)
        out.append(at.problem(f"{n.run.target}: {key + ': ' if key else ''}{message}"))
    return out


@dataclass
class _Resolver:
    problems: list[Problem]

    def __post_init__(self) -> None:
        self._exposed: dict[tuple[int, str, str], End | None] = {}

    # -- one end of a link -------------------------------------------------------------------------
    def end(self, scope: Scope, node: str, port: str, direction: str, where_node: Where,
            where_port: Where) -> End | None:
        """Resolve ``node``/``port`` (local to ``scope``) to a leaf end; ``direction`` is output|input."""
        member = scope.members.get(node)
        if member is None and node in scope.broken:
            return None
        if member is None:
            self.problems.append(where_node.problem(
                f"unknown node '{node}'",
                did_you_mean(node, [*scope.members, *scope.broken]) or _known("nodes", scope.members)))
            return None
        if member.kind == "sink" and direction == "output":
            self.problems.append(where_node.problem(
                f"'{node}' is a sink: a link cannot start from it", "links go from outputs to inputs"))
            return None
        if member.kind == "source" and direction == "input":
            self.problems.append(where_node.problem(
                f"'{node}' is a source: a link cannot end at it", "links go from outputs to inputs"))
            return None
        ports, other = _ports(member, direction)
        if port not in ports:
            hint = did_you_mean(port, ports)
            if hint is None and port in other:
                opposite = "input" if direction == "output" else "output"
                hint = f"'{port}' is an {opposite} of '{node}'; links go from outputs to inputs"
            self.problems.append(where_port.problem(
                f"node '{node}' has no {direction} '{port}'", hint or _known(f"{direction}s", ports)))
            return None
        if isinstance(member, Node):
            return member.id, port
        table = member.outputs if direction == "output" else member.inputs
        return self.exposed(member, table[port], direction)

    def exposed(self, comp: Composite, port: Exposed, direction: str) -> End | None:
        """A composite port's inner end, checked once (problems point into the composite file)."""
        key = (id(comp), direction, port.id)
        if key not in self._exposed:
            self._exposed[key] = None  # guards against re-entry while resolving
            self._exposed[key] = self.end(comp.scope, port.node, port.port, direction,
                                          port.where.at("node"), port.where.at(direction))
        return self._exposed[key]


def _meant_input(res: _Resolver, scope: Scope, node: str, port: str) -> End | None:
    """The input a link with a misspelt port probably meant (its echo is not reported)."""
    member = scope.members.get(node)
    if member is None:
        return None
    close = difflib.get_close_matches(port, list(member.inputs), n=1, cutoff=0.6)
    if not close:
        return None
    if isinstance(member, Node):
        return member.id, close[0]
    return res.exposed(member, member.inputs[close[0]], "input")


def _ports(member: Node | Composite, direction: str) -> tuple[list[str], list[str]]:
    if direction == "output":
        return list(member.outputs), list(member.inputs)
    return list(member.inputs), list(member.outputs)


def _known(what: str, names: object) -> str:
    items = sorted(str(n) for n in names)  # type: ignore[attr-defined]
    if not items:
        return f"no {what} declared"
    shown = ", ".join(items[:12]) + (", ..." if len(items) > 12 else "")
    return f"known {what}: {shown}"


def _scopes(scope: Scope) -> list[Scope]:
    out = [scope]
    for member in scope.members.values():
        if isinstance(member, Composite):
            out.extend(_scopes(member.scope))
    return out


def resolve(ir: FlowIR) -> tuple[list[Edge], list[Problem], set[tuple[str, str]]]:
    """Every connection as a leaf-to-leaf edge, the problems found on the way, and the inputs
    targeted by a link whose source did not resolve (already reported, not "unconnected")."""
    problems: list[Problem] = []
    attempted: set[tuple[str, str]] = set()
    res = _Resolver(problems)
    edges: list[Edge] = []
    for scope in _scopes(ir.root):
        for link in scope.links:
            src = res.end(scope, link.src_node, link.src_output, "output",
                          link.where.at("from", "node"), link.where.at("from", "output"))
            dst = res.end(scope, link.dst_node, link.dst_input, "input",
                          link.where.at("to", "node"), link.where.at("to", "input"))
            if src and dst:
                edges.append(Edge(src[0], src[1], dst[0], dst[1], link.where, dict(link.qos)))
            elif dst:
                attempted.add(dst)
            else:
                guess = _meant_input(res, scope, link.dst_node, link.dst_input)
                if guess:
                    attempted.add(guess)
        for member in scope.members.values():
            if isinstance(member, Composite):
                for table, direction in ((member.inputs, "input"), (member.outputs, "output")):
                    for port in table.values():
                        res.exposed(member, port, direction)
                continue
            for port_name, ref in member.inline.items():
                node, sep, output = ref.text.partition("/")
                if not sep or not node or not output or "/" in output:
                    problems.append(ref.where.problem(
                        f"bad input source {ref.text!r}",
                        "expected node/output or a timer such as zflow/timer/millis/100"))
                    continue
                src = res.end(scope, node, output, "output", ref.where, ref.where)
                if src:
                    edges.append(Edge(src[0], src[1], member.id, port_name, ref.where))
    edges.sort(key=lambda e: (e.where.doc.file or "", e.where.doc.line_of(e.where.path) or 0))
    return edges, problems, attempted


def check_edges(ir: FlowIR, edges: list[Edge], attempted: set[tuple[str, str]] = frozenset()) -> list[Problem]:  # type: ignore[assignment]
    """Doubly-connected and unconnected inputs, type mismatches across links."""
    problems: list[Problem] = []
    into: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        key = (edge.dst, edge.input)
        first = into.get(key)
        if first is not None:
            line = first.where.doc.line_of(first.where.path)
            problems.append(edge.where.problem(
                f"input '{edge.input}' of '{edge.dst}' is connected twice "
                f"(also from {first.src}/{first.output})",
                f"first connection at {first.where.doc.file or '<flow>'}:{line}; "
                "an input takes one link; add another input port"))
            continue
        into[key] = edge
        src_type = ir.nodes[edge.src].outputs[edge.output].type
        dst_type = ir.nodes[edge.dst].inputs[edge.input].type
        if not port_types.compatible(src_type, dst_type):
            problems.append(edge.where.problem(
                f"type mismatch: {edge.src}/{edge.output} sends {src_type} "
                f"but {edge.dst}/{edge.input} expects {dst_type}",
                "change one of the port types, or declare the input as any"))
    for node in ir.nodes.values() if not ir.partial else ():
        for port, spec in node.inputs.items():
            if port in node.timers or (node.id, port) in into or (node.id, port) in attempted:
                continue
            if port in node.inline:
                continue  # its source did not resolve: already reported
            problems.append(spec.where.problem(
                f"input '{port}' of '{node.id}' is not connected",
                "add a link to it, an inline source (port: node/output) or a timer"))
    return problems


def check_groups(ir: FlowIR) -> list[Problem]:
    """Nodes sharing a group share a process, so they cannot be placed on different daemons."""
    problems = []
    placed: dict[str, tuple[str, Node]] = {}
    for node in ir.nodes.values():
        daemon = node.deploy.get("daemon")
        if node.group is None or daemon is None:
            continue
        first = placed.setdefault(node.group, (str(daemon), node))
        if first[0] != str(daemon):
            problems.append(node.where.problem(
                f"'{node.id}' is in group '{node.group}' with '{first[1].id}' but placed on daemon "
                f"'{daemon}', not '{first[0]}'", "a group runs in one process: place its nodes together"))
    return problems


def _roots(ir: FlowIR) -> list[str]:
    """Where data enters a flow: sources, and nodes with a timer input (or with no input)."""
    return [nid for nid, n in ir.nodes.items() if n.kind == "source" or n.timers or not n.inputs]


def _successors(ir: FlowIR, edges: list[Edge]) -> dict[str, list[Edge]]:
    out: dict[str, list[Edge]] = {nid: [] for nid in ir.nodes}
    for edge in edges:
        out[edge.src].append(edge)
    return out


def feedback_inputs(ir: FlowIR, edges: list[Edge]) -> set[End]:
    """The inputs that close a cycle: edges back onto the current path of a depth-first walk
    from the roots (in declaration order, so the choice is stable). Removing them leaves no
    cycle, and every node a root reaches keeps at least one input that is not feedback."""
    succ = _successors(ir, edges)
    on_path, done = set(), set()
    back: set[End] = set()
    for root in _roots(ir):
        if root in done:
            continue
        on_path.add(root)
        stack = [(root, iter(succ[root]))]
        while stack:
            node, todo = stack[-1]
            edge = next(todo, None)
            if edge is None:
                on_path.discard(node)
                done.add(node)
                stack.pop()
            elif edge.dst in on_path:
                back.add((edge.dst, edge.input))
            elif edge.dst not in done:
                on_path.add(edge.dst)
                stack.append((edge.dst, iter(succ[edge.dst])))
    return back


def _components(nodes: list[str], succ: dict[str, list[Edge]]) -> list[list[str]]:
    """Strongly connected components among ``nodes`` (Tarjan, without recursion)."""
    inside = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(e.dst for e in succ[start] if e.dst in inside))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            nxt = next(todo, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(e.dst for e in succ[nxt] if e.dst in inside)))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                out.append(sorted(comp, key=nodes.index))
    return out


def _a_cycle(comp: list[str], succ: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest cycle through the first node of a strongly connected component."""
    start, inside = comp[0], set(comp)
    came: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for edge in succ[node]:
            if edge.dst == start:
                path = [edge]
                while path[0].src != start:
                    path.insert(0, came[path[0].src])
                return path
            if edge.dst in inside and edge.dst not in came:
                came[edge.dst] = edge
                queue.append(edge.dst)
    raise AssertionError("a strongly connected component has a cycle")  # pragma: no cover


def _at(where: Where) -> str:
    line = where.doc.line_of(where.path)
    return f"{where.doc.file or '<flow>'}{f':{line}' if line else ''}"


def check_cycles(ir: FlowIR, edges: list[Edge], attempted: set[End] = frozenset()) -> list[Problem]:  # type: ignore[assignment]
    """Cycles that no source reaches: nothing ever enters them, so they never start or end."""
    if ir.partial:
        return []
    succ = _successors(ir, edges)
    reached = set(_roots(ir))
    queue = deque(reached)
    while queue:
        for edge in succ[queue.popleft()]:
            if edge.dst not in reached:
                reached.add(edge.dst)
                queue.append(edge.dst)
    problems = []
    for comp in _components([n for n in ir.nodes if n not in reached], succ):
        if len(comp) == 1 and not any(e.dst == comp[0] for e in succ[comp[0]]):
            continue
        if any((nid, port) in attempted for nid in comp for port in ir.nodes[nid].inputs):
            continue  # a link into it did not resolve (reported): it may be what feeds it
        cycle = _a_cycle(comp, succ)
        names = " -> ".join([e.src for e in cycle] + [cycle[0].src])
        links = "; ".join(f"{e.src}/{e.output} -> {e.dst}/{e.input} at {_at(e.where)}" for e in cycle)
        rest = [n for n in comp if n not in {e.src for e in cycle}]
        others = f" (and {', '.join(rest)})" if rest else ""
        problems.append(cycle[0].where.problem(
            f"cycle {names}{others} has no source: expected a source or a timer input feeding one of "
            f"its nodes, found only links among them, so the flow would never end (links: {links})",
            "link a source into the cycle, or give one of its nodes a timer input"))
    return problems


def check(ir: FlowIR) -> tuple[list[Edge], list[Problem]]:
    """All problems of a built flow (its build problems first), sorted by file and line."""
    edges, problems, attempted = resolve(ir)
    problems += check_edges(ir, edges, attempted)
    problems += check_cycles(ir, edges, attempted)
    problems += check_groups(ir)
    everything = [*ir.problems, *problems]
    return edges, sort_problems(everything, first=ir.source_file)


def sort_problems(problems: list[Problem], first: str | None = None) -> list[Problem]:
    """Unique problems by file (``first``, the flow itself, leading) and line."""
    seen: set[tuple[object, ...]] = set()
    unique = []
    for p in problems:
        key = (p.file, p.line, p.path, p.message)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return sorted(unique, key=lambda p: (p.file != first, p.file or "", p.line or 0))


__all__ = ["check", "check_cycles", "check_edges", "check_groups", "feedback_inputs", "resolve", "sort_problems"]
