"""Keys are parsed in keyexprs only (issue 9, item 3): each parser undoes its builder and
refuses every other key, so a key of another kind is never taken for one of its own."""

from __future__ import annotations

import pytest

from zflow import keyexprs


@pytest.mark.parametrize(("parse", "key", "expected"), [
    (keyexprs.parse_runner_alive, keyexprs.runner_alive("wf", "r-1"), ("wf", "r-1")),
    (keyexprs.parse_runs, keyexprs.runs("wf", "run-7"), ("wf", "run-7")),
    (keyexprs.parse_runs, keyexprs.runs("*", "run-7"), ("*", "run-7")),
    (keyexprs.parse_runs, "zflow/runs/**", ("**", "**")),
    (keyexprs.parse_blob, keyexprs.blob("site-a", "ab12"), ("site-a", "ab12")),
    (keyexprs.parse_node_alive, keyexprs.node_alive("f", "i", "n"), "n"),
])
def test_a_parser_undoes_its_builder(parse, key, expected):
    assert parse(key) == expected


@pytest.mark.parametrize("parse", [keyexprs.parse_runner_alive, keyexprs.parse_runs, keyexprs.parse_blob,
                                   keyexprs.parse_node_alive])
def test_a_parser_refuses_other_keys(parse):
    others = [keyexprs.daemon_alive("d"), keyexprs.node_stats("f", "i", "n"), keyexprs.storage_alive("runs", "1"),
              keyexprs.runs("wf", "r") + "/extra", "zflow/blobs/x", "other/runs/a/b"]
    own = {keyexprs.parse_runner_alive: keyexprs.runner_alive("w", "r"), keyexprs.parse_runs: keyexprs.runs("w", "r"),
           keyexprs.parse_blob: keyexprs.blob("s", "d"), keyexprs.parse_node_alive: keyexprs.node_alive("f", "i", "n")}
    assert parse(own[parse]) is not None
    for key in others:
        assert parse(key) is None, key


def test_the_runs_selector_across_workflows_is_built_not_formatted():
    assert keyexprs.runs("*", "run-7") == "zflow/runs/*/run-7"
