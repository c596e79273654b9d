"""Pool accounting: what each of a daemon's pools still offers, for its status and the scheduler."""

from __future__ import annotations

from collections.abc import Callable

from zflow.daemon.identity import Identity, available_memory
from zflow.daemon.state import InstanceRecord
from zflow.scheduler.model import Pool


class PoolAccounting:
    """Configured pools minus what this daemon's running nodes asked for, capped by live memory."""

    def __init__(self, cfg: Identity, records: Callable[[], dict[str, InstanceRecord]]):
        self.cfg = cfg
        self.records = records

    def free(self) -> list[Pool]:
        from zflow.dataflow.graph import Graph
        from zflow.scheduler.model import demands_for

        pools = {p.name: p for p in self.cfg.pool_list()}
        default = next(iter(pools))
        for rec in self.records().values():
            if rec.state == "stopped":
                continue
            mine = rec.nodes_on(self.cfg.id)
            if not mine:
                continue
            for d in demands_for(Graph.from_dict(rec.graph), mine):
                name = rec.placement.get(d.node, "").split("/", 1)[-1]
                pool = pools.get(name) or pools[default]
                pool.cpu -= d.cpu
                pool.memory -= d.memory
                pool.gpu -= d.gpu
        avail = available_memory()
        for pool in pools.values():
            if avail is not None:
                pool.memory = min(pool.memory, avail)
        return list(pools.values())
