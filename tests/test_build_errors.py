"""Bad inputs to ``zflow build``: each is refused with exit 2 (or 1 for a runtime failure) and a
message naming the offending thing, before anything is downloaded (no network needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zflow.build.models import Wheel
from zflow.build.wheels import check_across_arches
from zflow.cli.main import main
from zflow.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
ZSCORE = ROOT / "operators" / "ryax" / "zscore-detector"


@pytest.fixture
def action(tmp_path: Path) -> Path:
    d = tmp_path / "zscore"
    shutil.copytree(ZSCORE, d)
    return d


def edit(d: Path, old: str, new: str) -> None:
    meta = d / "ryax_metadata.yaml"
    text = meta.read_text()
    assert old in text, old
    meta.write_text(text.replace(old, new))


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["build", "action", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("type: python3", "type: nodejs", ["ryax_metadata.yaml:", "spec.type", "type nodejs cannot be packaged",
                                       "only python3"]),
    ("type: python3", "type: python3-cuda", ["spec.type", "CUDA base image"]),
    ('version: "3.11"', 'version: "3.9"', ["spec.options.python.version", "Python 3.9 cannot be packaged",
                                           "3.11 (Debian bookworm)", "3.13 (Debian trixie)"]),
    ('options: {python: {version: "3.11"}}', 'options: {python: {version: "3.11"}, nixpkgs: {version: "23.11"}}',
     ["spec.options.nixpkgs", "needs a Nix backend"]),
    ("dependencies: [python3Packages.numpy]", "dependencies: [python3Packages.numpy, libfoo]",
     ["spec.dependencies[1]", "'libfoo' has no known Debian or PyPI equivalent", "requirements.txt"]),
    ("dependencies: [python3Packages.numpy]", "dependencies: [ffmpg]", ["spec.dependencies[0]",
                                                                         "did you mean 'ffmpeg'?"]),
    ("dependencies: [python3Packages.numpy]", "dependencies: [python3Packagez.numpy]",
     ["spec.dependencies[0]", "python3Packages.NAME"]),
    ("id: zscore-detector", "id: Zscore", ["spec.id", "string should match pattern"]),
])
def test_metadata_refusals(capsys, action, old, new, expected):
    (action / "ryax_handler.js").write_text("exports.handle = (i) => i;\n")  # so a nodejs action is complete
    edit(action, old, new)
    code, err = run(capsys, str(action))
    assert code == 2, err
    for text in expected:
        assert text in err, (text, err)
    assert str(action / "ryax_metadata.yaml") in err or "ryax_metadata.yaml" in err


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("overlays.nix", "self: super: {}", ["overlays.nix needs a Nix backend"]),
    ("requirements.txt", "numpy\ngit+https://example.org/x.git\n", ["requirements.txt:2", "not a name from the package index"]),
    ("requirements.txt", "-e .\n", ["requirements.txt:1", "'-e .'"]),
    ("requirements.txt", "pkg @ file:///tmp/pkg.whl\n", ["requirements.txt:1", "NAME==VERSION"]),
    ("ryax_lock.json", "{not json", ["ryax_lock.json", "not valid JSON"]),
    ("ryax_lock.json", json.dumps({"actionNix": "x"}), ["ryax_lock.json", "'python' section"]),
    ("ryax_lock.json", json.dumps({"python": {"pythonVersion": "3.10.4", "lockedRequirements": "numpy==1.26.4"}}),
     ["ryax_lock.json", "pythonVersion is 3.10.4", "Python 3.11"]),
    ("ryax_lock.json", json.dumps({"python": {"pythonVersion": "3.11", "lockedRequirements": ["numpy"]}}),
     ["lockedRequirements must be pip-freeze text"]),
    ("zflow_lock.json", json.dumps({"lockVersion": 1, "inputz": {}}), ["zflow_lock.json", "inputz", "unknown field"]),
])
def test_file_refusals(capsys, action, name, content, expected):
    (action / name).write_text(content)
    code, err = run(capsys, str(action))
    assert code == 2, err
    for text in expected:
        assert text in err, (text, err)


def test_symlink_in_action_is_refused(capsys, action, tmp_path):
    (tmp_path / "outside.txt").write_text("x")
    (action / "data.txt").symlink_to(tmp_path / "outside.txt")
    code, err = run(capsys, str(action))
    assert code == 2 and "data.txt" in err and "symbolic links cannot be packaged" in err


def test_missing_directory_and_metadata(capsys, tmp_path):
    code, err = run(capsys, str(tmp_path / "nope"))
    assert code == 2 and "action directory not found" in err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ryax_metadata.yml").write_text("x: 1")
    code, err = run(capsys, str(tmp_path / "empty"))
    assert code == 2 and "ryax_metadata.yaml is missing" in err and "did you mean 'ryax_metadata.yml'" in err


@pytest.mark.parametrize(("ref", "expected"), [
    ("zscore:1.0", "must start with a registry host"),
    ("127.0.0.1:5000/ZScore:1.0", "repository 'ZScore' is not valid"),
    ("127.0.0.1:5000/zscore:-bad", "tag '-bad' is not valid"),
    ("127.0.0.1:5000/zscore@sha256:" + "0" * 64, "push to a tag, not a digest"),
    ("127.0.0.1:5000/", "must start with a registry host"),
])
def test_bad_registry_references(capsys, action, ref, expected):
    code, err = run(capsys, str(action), "--push", ref)
    assert code == 2 and expected in err and ref.split("/")[0] in err, err


def test_bad_options(capsys, action, monkeypatch):
    code, err = run(capsys, str(action), "--platform", "amd64,riscv64")
    assert code == 2 and "unknown platform 'riscv64'" in err
    code, err = run(capsys, str(action), "--platform", "arm")
    assert code == 2 and "did you mean 'arm64'" in err
    code, err = run(capsys, str(action), "--connect", "tcp/127.0.0.1:7447")
    assert code == 2 and "--connect is only for --via-zenoh" in err
    code, err = run(capsys, str(action), "--lock", "frozen")
    assert code == 2 and "--lock frozen needs a lock" in err and "zflow_lock.json" in err
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    code, err = run(capsys, str(action))
    assert code == 2 and "SOURCE_DATE_EPOCH must be an integer" in err and "yesterday" in err


def _wheel(name: str, version: str, filename: str) -> Wheel:
    return Wheel(name=name, version=version, filename=filename, sha256="0" * 64, url="https://x/" + filename,
                 layer="deps")


def test_versions_must_agree_across_architectures():
    with pytest.raises(UserError) as err:
        check_across_arches({
            "amd64": [_wheel("pydantic-core", "2.50.5", "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.whl")],
            "arm64": [_wheel("pydantic-core", "0.0.1", "pydantic_core-0.0.1-py3-none-any.whl")]})
    assert "pydantic-core resolves to different versions" in str(err.value) and "arm64 0.0.1" in str(err.value)
    with pytest.raises(UserError) as err:
        check_across_arches({
            "amd64": [_wheel("foo", "1.0", "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")],
            "arm64": [_wheel("foo", "1.0", "foo-1.0-py3-none-any.whl")]})
    assert "foo has a platform wheel" in str(err.value) and "arm64" in str(err.value)
    check_across_arches({"amd64": [_wheel("a", "1", "a-1-py3-none-any.whl")],
                         "arm64": [_wheel("a", "1", "a-1-py3-none-any.whl")]})


def test_image_entrypoint_runs_a_handler_once_and_refuses_a_trigger():
    import json
    import subprocess
    import sys

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    sample = {"table": [{"v": 1.0}] * 9 + [{"v": 9.0}], "column": "v", "threshold": 2.0}
    ok = subprocess.run([sys.executable, "-m", "zflow.build.run_action", str(ZSCORE)], input=json.dumps(sample),
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["outputs"][0]["count"] == 1
    bad = subprocess.run([sys.executable, "-m", "zflow.build.run_action", str(ZSCORE)], input='{"column": "v"}',
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "table" in bad.stderr and "Traceback" not in bad.stderr
    trigger = subprocess.run([sys.executable, "-m", "zflow.build.run_action",
                              str(ROOT / "operators" / "ryax" / "emit-every")], input="{}",
                             capture_output=True, text=True, env=env, timeout=60)
    assert trigger.returncode == 2 and "emit-every is a trigger" in trigger.stderr
