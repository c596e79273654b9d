"""The placement core (filters, weighted scores, first fit, tie-break, reasons), policies, and
the scheduler queryable answering over a real router."""

from __future__ import annotations

import numpy as np
import pytest

from zflow.errors import UserError
from zflow.scheduler.model import Demand, Pool, demand_from_deploy
from zflow.scheduler.node_placement import Placer, place
from zflow.scheduler.policies import get_policy, policy_names, register_policy


def pools() -> list[Pool]:
    return [
        Pool("edge-1", "default", arch="aarch64", site="field", cpu=2, performance=20, energy=90, cost=80,
             labels={"camera": "yes"}),
        Pool("cloud-1", "big", arch="x86_64", site="cloud", cpu=16, performance=95, energy=30, cost=20),
        Pool("cloud-1", "spot", arch="x86_64", site="cloud", cpu=8, performance=60, energy=40, cost=90),
    ]


def test_weights_decide_and_capacity_is_consumed():
    perf = Demand("train", cpu=10, weights=(1, 0, 0))
    cheap = Demand("batch", cpu=4, weights=(0, 0, 1))
    green = Demand("filter", cpu=1, weights=(0, 1, 0))
    a, b, c = place(pools(), [perf, cheap, green])
    assert (a.pool, b.pool, c.pool) == ("cloud-1/big", "cloud-1/spot", "edge-1/default")
    placer = Placer(pools())
    assert placer.place(Demand("x", cpu=7, weights=(1, 0, 0))).pool == "cloud-1/big"
    assert placer.place(Demand("y", cpu=9.5, weights=(1, 0, 0))).pool is None  # 9 left on big, 8 on spot


def test_filters_and_their_reasons():
    d = Demand("cam", arch=("arm64",), labels={"camera": "yes"})
    [dec] = place(pools(), [d], explain=True)
    assert dec.pool == "edge-1/default"
    assert dec.rejected == {"cloud-1/big": "architecture x86_64 is not a requested one (arm64)",
                            "cloud-1/spot": "architecture x86_64 is not a requested one (arm64)"}
    [dec] = place(pools(), [Demand("n", sites=("cloud",), pools=("spot",), cpu=9)])
    assert dec.pool is None
    assert dec.rejected == {"cloud-1/big": "pool 'big' is not a requested pool (spot)",
                            "cloud-1/spot": "needs 9 CPU, 8 free",
                            "edge-1/default": "site 'field' is not a requested site (cloud)"}
    [dec] = place(pools(), [Demand("n", labels={"camera": "no"}, memory=2**40)])
    assert dec.rejected["edge-1/default"] == "label camera=no required, pool has camera=yes"
    assert dec.rejected["cloud-1/big"] == "label camera=no required, pool has no label 'camera'"


def test_explain_says_why_a_passing_candidate_lost():
    [dec] = place(pools(), [Demand("n", weights=(1, 0, 0))], explain=True)
    assert dec.pool == "cloud-1/big"
    assert dec.rejected["cloud-1/spot"] == "score 60 ranks below cloud-1/big (95)"


def test_ties_break_by_pool_key_deterministically():
    same = [Pool(f"d{i}", cpu=1, performance=50) for i in (3, 1, 2)]
    decisions = place(same, [Demand(f"n{i}", cpu=1) for i in range(3)], explain=True)
    assert [d.daemon for d in decisions] == ["d1", "d2", "d3"]
    assert decisions[0].rejected["d2/default"] == "same score 150 as d1/default, which sorts first"


def test_ineligible_pools_never_get_work():
    p = pools()
    p[1].ineligible = "daemon 'cloud-1' has no bootstrap token"
    [dec] = place(p, [Demand("n", weights=(1, 0, 0))], explain=True)
    assert dec.pool == "cloud-1/spot"
    assert dec.rejected["cloud-1/big"] == "daemon 'cloud-1' has no bootstrap token"


def test_spread_and_pack_policies():
    two = [Pool("a", cpu=4), Pool("b", cpu=4)]
    spread = [d.daemon for d in place(two, [Demand(str(i), cpu=1) for i in range(4)], policy="spread")]
    pack = [d.daemon for d in place(two, [Demand(str(i), cpu=1) for i in range(4)], policy="pack")]
    assert spread == ["a", "b", "a", "b"] and pack == ["a", "a", "a", "a"]


def test_policies_are_pluggable_and_unknown_names_suggest():
    class Greenest:
        name = "greenest"
        dynamic = False

        def scores(self, table, demand):
            return table.scores[:, 1].copy()

    register_policy(Greenest())
    assert "greenest" in policy_names()
    [dec] = place(pools(), [Demand("n")], policy="greenest")
    assert dec.pool == "edge-1/default"
    with pytest.raises(UserError, match=r"unknown placement policy 'sprad'.*did you mean 'spread'"):
        get_policy("sprad")


def test_deploy_hints_become_demands():
    d = demand_from_deploy("n", {"arch": "arm64", "site": "field", "pools": ["fast"], "daemon": "edge-1",
                                 "labels": {"camera": True}, "resources": {"cpu": 0.5, "memory": "256M"},
                                 "objectives": {"performance": 2, "energy": 0, "cost": 1}})
    assert (d.arch, d.sites, d.pools, d.daemons) == (("aarch64",), ("field",), ("fast",), ("edge-1",))
    assert d.memory == 256 * 2**20 and d.cpu == 0.5 and d.weights == (2, 0, 1) and d.labels == {"camera": "True"}
    with pytest.raises(UserError, match=r"unknown deploy key .sites_list. \(did you mean .sites.\?\)"):
        demand_from_deploy("n", {"sites_list": ["a"]})
    with pytest.raises(UserError, match="not a memory size"):
        demand_from_deploy("n", {"resources": {"memory": "much"}})


def test_many_decisions_are_vectorised():
    rng = np.random.default_rng(0)
    many = [Pool(f"d{i:03d}", cpu=1000, memory=2**50, performance=float(rng.integers(100)), energy=float(rng.integers(100)),
                 cost=float(rng.integers(100))) for i in range(100)]
    decisions = Placer(many).place_all([Demand(f"n{i}", weights=(1, 1, 1)) for i in range(1000)])
    best = max(many, key=lambda p: (p.performance + p.energy + p.cost, -int(p.daemon[1:])))
    assert all(d.daemon == best.daemon for d in decisions)


def test_scheduler_queryable_answers_with_live_daemon_status(router, zsession, tmp_path):
    from daemon_helpers import in_process_daemons

    from zflow.scheduler.service import SchedulerService, request_placement
    from zflow.transport.auth import issue_token

    secret = b"s" * 32
    with in_process_daemons(router, tmp_path, "d1", token=issue_token(secret, "d1")), \
            in_process_daemons(router, tmp_path, "d2"):
        svc = SchedulerService(zsession, secret)
        try:
            decisions, answer = request_placement(zsession, [Demand("n", cpu=0.5)], explain=True)
        finally:
            svc.close()
    assert "local" not in answer and answer["daemons"] == ["d1", "d2"] and answer["verified"] == ["d1"]
    [d] = decisions
    assert d.pool == "d1/default"
    assert d.rejected == {"d2/default": "daemon 'd2' has no bootstrap token (start it with --token or token_file)"}
