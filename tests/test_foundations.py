"""The shared foundations: errors, document loading, key expressions, codec, sessions."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from zflow import codec, keyexprs
from zflow.documents import parse_text, validate
from zflow.errors import Problem, UserError, did_you_mean, format_path


def test_format_path_and_did_you_mean():
    assert format_path(("links", 3, "to", "input")) == "links[3].to.input"
    assert did_you_mean("clen", ["clean", "sink"]) == "did you mean 'clean'?"
    assert did_you_mean("zzz", ["clean"]) is None


def test_problem_render_has_file_line_path_hint():
    p = Problem("unknown node 'clen'", file="f.yaml", line=7, path=("links", 0, "to", "node"),
                hint="did you mean 'clean'?")
    assert p.render() == "f.yaml:7: links[0].to.node: unknown node 'clen' (did you mean 'clean'?)"


def test_yaml_lines_and_strict_booleans():
    doc = parse_text("a: 1\nb:\n  - x: on\n    y: true\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": "on", "y": True}]}
    assert doc.line_of(("b", 0, "y")) == 4
    assert doc.line_of(("b", 0, "missing")) == 3


def test_invalid_yaml_is_a_located_user_error():
    with pytest.raises(UserError) as info:
        parse_text("a: [1, 2\nb: 3\n", "bad.yaml")
    assert info.value.problems[0].file == "bad.yaml"
    assert info.value.problems[0].line is not None


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: int


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    items: list[_Inner]


def test_validate_reports_every_problem_with_lines_and_hints():
    doc = parse_text("name: x\nitems:\n  - threshold: 1\n  - treshold: 2\n  - threshold: no\n", "m.yaml")
    with pytest.raises(UserError) as info:
        validate(_Outer, doc)
    rendered = [p.render() for p in info.value.problems]
    assert any(r == "m.yaml:4: items[1].treshold: unknown field (did you mean 'threshold'?)" for r in rendered)
    assert any(r.startswith("m.yaml:4: items[1].threshold: required field is missing") for r in rendered)
    assert any(r.startswith("m.yaml:5: items[2].threshold:") for r in rendered)


def test_keyexprs_layout_and_rejections():
    assert keyexprs.data("f", "i", "clean", "out") == "zflow/data/f/i/clean/out"
    assert keyexprs.daemon_alive("edge-1") == "zflow/alive/daemon/edge-1"
    for bad in ("a/b", "@admin", "x*", "q?"):
        with pytest.raises(UserError):
            keyexprs.data("f", "i", bad, "out")


def test_codec_round_trips_numpy_without_copy_and_bytes_untouched():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    payload, ct = codec.encode({"a": arr, "n": np.int64(3), "s": "x"})
    value = codec.decode(payload, ct)
    assert np.array_equal(value["a"], arr) and value["a"].dtype == np.float32
    assert value["a"].base is not None  # a view over the payload, not a copy
    assert value["n"] == 3
    raw = b"\x00\x01raw"
    payload, ct = codec.encode(raw)
    assert payload is raw and codec.decode(payload, ct) == raw
    assert codec.decode(b'{"x": 1}', "application/json") == {"x": 1}


def test_embedded_router_carries_a_put(router, zsession):
    from zflow.transport import open_session

    got = threading.Event()
    seen = []

    def on_sample(sample):
        seen.append(sample.payload.to_bytes())
        got.set()

    sub = zsession.declare_subscriber("zflow/data/t/**", on_sample)
    with open_session(router.client_options()) as other:

        for _ in range(50):  # declarations propagate asynchronously
            other.put("zflow/data/t/i/n/o", b"hello")
            if got.wait(0.1):
                break
    sub.undeclare()
    assert seen and seen[0] == b"hello"
