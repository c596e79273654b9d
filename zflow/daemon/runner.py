"""Running a daemon's share of an instance: the runtime's FlowRunner, with per-bundle Pythons.

Child names carry the instance (a daemon may run several instances of one flow) and nodes
shipped with requirements run under their bundle's venv interpreter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from zflow.daemon.identity import DAEMON_ENV, SITE_ENV
from zflow.dataflow.graph import Graph
from zflow.runtime.launcher import FlowRunner, host_argv, host_env


class DaemonRunner(FlowRunner):
    def __init__(self, *args: Any, pythons: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pythons = pythons or {}
        self.extra_env = env or {}

    def child_name(self, group: str) -> str:
        base = f"{self.graph.flow}/{self.graph.instance}/{group}"
        name, n = base, 1
        while name in self.supervisor.children and not self.supervisor.children[name].final:
            n += 1
            name = f"{base}#{n}"
        return name

    def host_argv(self, nodes: list[str]) -> list[str]:
        python = next((self.pythons[n] for n in nodes if n in self.pythons), None)
        return [python, *host_argv()[1:]] if python else host_argv()

    def host_env(self) -> dict[str, str]:
        return {**host_env(), **self.extra_env}

    def node_states(self) -> dict[str, str]:
        status = self.status()
        out = {}
        for group, nodes in self.groups().items():
            names = [c for c in self.children if c.split("/", 2)[-1].split("#")[0] == group]
            state = status.get(names[-1], {}).get("state", "unknown") if names else "unknown"
            for n in nodes:
                out[n] = str(state)
        return out


def localize(graph: Graph, nodes: list[str], files_dirs: dict[str, str]) -> Graph:
    """Point shipped nodes at their cached bundle (``deploy.bundle``) instead of the deployer's path:
    the Python file target, or the config key naming the node's code directory."""
    specs = dict(graph.nodes)
    for nid in nodes:
        spec = specs[nid]
        bundle = spec.deploy.get("bundle")
        if bundle and nid in files_dirs:
            if bundle.get("config"):
                config = {**spec.config, bundle["config"]: files_dirs[nid]}
                specs[nid] = replace(spec, config=config)
            else:
                target = f"{files_dirs[nid]}/{bundle['target']}"
                specs[nid] = replace(spec, run=replace(spec.run, target=target), base_dir=files_dirs[nid])
    return replace(graph, nodes=specs)


__all__ = ["DAEMON_ENV", "SITE_ENV", "DaemonRunner", "localize"]
