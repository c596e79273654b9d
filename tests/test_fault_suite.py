"""The fault suite (issue 8): sequence-numbered messages through every kind of link while
consumers stall, nodes and daemons are SIGKILLed and restarted and a namespace is cut off; then,
per link, ``block`` delivered exactly once and in order, drop counts equal what was lost, and
nothing is left running.

Each scenario runs once (cached for the module); one test judges its links, another its orphans,
so an expected failure of the first never hides a leftover process. Scenarios that need work
on other branches are strict xfails naming that branch: the lead removes the mark on merge.
``benchmarks/soak.py`` runs the same scenarios for as long as asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultlib import scenarios as S

pytestmark = pytest.mark.timeout(120)

GAP = "known gap (issue 8, open): "


SCENARIOS = S.ALL

# Open gap (docs/dataflow.md, "block across a consumer crash"): a relay killed right after its
# handler returned may still hold the outputs it handed to Zenoh (there is no flush to wait on);
# its input counts as finished, so they are not re-sent. Not strict: most runs lose nothing.
RELAY_GAP = pytest.mark.xfail(strict=False, reason=GAP + "a killed relay may lose the outputs still in "
                              "its process when it died; closing it needs sequence numbers per link")
# Open flake: one full-suite run of five lost 2 of 3,000 messages around a sink's SIGKILL (767-768:
# neither recorded nor re-sent); root cause not found yet. Not strict while it is open.
SINK_FLAKE = pytest.mark.xfail(strict=False, reason=GAP + "a SIGKILLed sink lost 2 of 3,000 messages "
                               "once in five full runs (neither recorded nor re-sent); cause open")

# What each scenario's links must show, and what keeps it from holding today.
PROMISES = [
    pytest.param("inprocess-stall", id="inprocess-stall"),
    pytest.param("zenoh-sigstop", id="zenoh-sigstop"),
    pytest.param("zenoh-stall-beyond-lease", id="zenoh-stall-beyond-lease"),
    pytest.param("drop-oldest", id="drop-oldest"),
    pytest.param("latest", id="latest"),
    pytest.param("bridge-in-out", id="bridge-in-out"),
    pytest.param("relay-sigkill", id="relay-sigkill", marks=RELAY_GAP),
    pytest.param("sink-sigkill", id="sink-sigkill", marks=SINK_FLAKE),
    pytest.param("sink-sigkill-in-handler", id="sink-sigkill-in-handler"),
    pytest.param("daemon-sigkill", id="daemon-sigkill"),
    pytest.param("netns-partition", id="netns-partition", marks=pytest.mark.netns),
    pytest.param("netns-stall", id="netns-stall", marks=pytest.mark.netns),
    pytest.param("workflow-steps", id="workflow-steps"),
    pytest.param("workflow-runner-sigkill", id="workflow-runner-sigkill"),
    pytest.param("source-sigterm", id="source-sigterm"),
]

_outcomes: dict[str, S.Run] = {}


def outcome(name: str, tmp_path_factory: pytest.TempPathFactory) -> S.Run:
    """The scenario's result, run on first use."""
    if name not in _outcomes:
        directory = Path(tmp_path_factory.mktemp(name))
        try:
            _outcomes[name] = S.run(SCENARIOS[name], directory)
        except S.NetnsUnavailable as exc:
            pytest.skip(str(exc))
    return _outcomes[name]


@pytest.mark.parametrize("name", PROMISES)
def test_links_keep_their_promise(name, tmp_path_factory):
    """``block``: every message once, in order, the flow ends; ``drop_oldest``/``latest``:
    the drops the runtime counts are exactly the messages that never arrived."""
    run = outcome(name, tmp_path_factory)
    assert run.reports, "the scenario judged no link"
    assert all(r.received for r in run.reports), [r.summary() for r in run.reports]
    assert not run.problems() and not run.notes, "\n".join(
        [r.summary() for r in run.reports] + run.notes)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.netns] if n.startswith("netns") else [])
                                  for n in SCENARIOS])
def test_no_process_outlives_its_scenario(name, tmp_path_factory):
    run = outcome(name, tmp_path_factory)
    assert not run.orphans, "\n".join(f"{pid}: {cmd}" for pid, cmd in run.orphans)


@pytest.mark.parametrize("name", [pytest.param("relay-sigkill", marks=RELAY_GAP),
                                  pytest.param("sink-sigkill", marks=SINK_FLAKE), "sink-sigkill-in-handler"])
def test_a_killed_consumer_comes_back_without_duplicates_or_reordering(name, tmp_path_factory):
    """A ``block`` consumer's host SIGKILLed and restarted by its policy: the producer waited
    and re-sent what the dead process had not finished; nothing lost or reordered, the flow
    ends, and at most the one message being handled at the kill came twice, right after itself."""
    run = outcome(name, tmp_path_factory)
    assert run.faults.count["kill"] == 1 and not run.notes, run.notes
    (rep,) = run.reports
    assert rep.received and not (rep.lost or rep.reordered or rep.stale), rep.summary()
    assert rep.duplicates <= 1, rep.summary()


def test_the_orphan_check_finds_a_process_left_behind(tmp_path):
    """A scenario that leaves a process (detached in its own session) is caught, and the
    process is killed afterwards."""
    import subprocess

    def leaves_one(run: S.Run) -> None:
        run.notes.append(str(subprocess.Popen(["sleep", "60"], start_new_session=True).pid))

    from faultlib.inject import marked_processes

    # Under a full suite another test's stray signal can end the sleeper before it is looked
    # for; a broken orphan check fails every attempt.
    for attempt in range(3):
        run = S.run(leaves_one, tmp_path / str(attempt), grace=0.5)
        if run.orphans:
            break
    assert [pid for pid, _ in run.orphans] == [int(run.notes[0])]
    assert not marked_processes(run.mark)  # reaped


def test_the_checker_finds_every_kind_of_fault():
    """The judge itself: a loss, a duplicate, a reordering, a lost tail, a stale epoch."""
    rec = [("a", 0), ("a", 1), ("a", 1), ("a", 3), ("a", 2), ("a", 4), ("b", 0), ("a", 5), ("b", 1)]
    rep = S.judge("l", rec, ("b", 3))
    assert (rep.duplicates, rep.reordered, rep.stale, rep.epochs) == (1, 1, 1, 2)
    assert rep.lost == [(2, 2), (2, 3)]
    assert not S.judge("ok", [("e", i) for i in range(5)], ("e", 4)).problems()
    redelivered = [("e", 0), ("e", 1), ("e", 1), ("e", 2)]  # the message in hand at a consumer's kill
    assert not S.judge("k", redelivered, ("e", 2), crashes=1).problems()
    assert S.judge("k", [*redelivered, ("e", 2)], ("e", 2), crashes=1).problems() == [
        "2 duplicate(s) (1 allowed: one per consumer crash)"]
    assert S.judge("k", redelivered, ("e", 2)).problems() == ["1 duplicate(s)"]
    drops = S.judge("d", [("e", 0), ("e", 7), ("e", 9)], ("e", 9), policy="latest")
    assert drops.lost_count == 7 and drops.problems() == ["7 dropped, none counted (no drop count reported)"]
    drops.dropped_counted = 7
    assert not drops.problems()
