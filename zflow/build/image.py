"""The build pipeline: one action directory -> one multi-architecture OCI image.

Steps, in order: plan (resolve) -> lock decision (reuse, re-resolve or frozen) -> base debs
and wheels per architecture -> four layers per architecture (base, zflow runtime, action
dependencies, action files) -> configs, manifests, index -> lock and image layout.
Every step reads and writes the content-addressed cache; layers are memoised by the digest
of their inputs, so a rebuild after editing the handler only writes the action layer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import zflow
from zflow.build import rootfs, wheels
from zflow.build.cache import Cache, key_of
from zflow.build.layers import Entry, Layer, write_layer
from zflow.build.lock import (
    RESOLUTION_FIELDS,
    changed_inputs,
    frozen_problems,
    read_lock,
    require_lock,
    write_lock,
)
from zflow.build.models import BuilderFacts, Deb, Digests, Lock, LockInputs, PlatformDigests, Wheel
from zflow.build.oci_layout import Descriptor, image, image_index, write_layout
from zflow.build.resolve import ARCHES, Plan, plan_action
from zflow.errors import RuntimeFailure, UserError

DEFAULT_EPOCH = 1704067200  # 2024-01-01: fixed unless SOURCE_DATE_EPOCH says otherwise
LAYER_FORMAT = 4  # bump when layer bytes change for equal inputs (invalidates memos)
ROOT = "opt/zflow"
_DATA_SUFFIXES = {".py", ".yaml", ".json", ".json5", ".csv"}

Progress = Callable[[str, str], None]


@dataclass
class BuildOptions:
    platforms: list[str] | None = None
    lock: str = "auto"  # auto | update | frozen
    cache: Cache | None = None
    index_url: str = wheels.DEFAULT_INDEX
    mirror: str | None = None
    epoch: int | None = None
    progress: Progress | None = None


@dataclass
class BuildOutcome:
    plan: Plan
    lock: Lock
    index: Descriptor
    manifests: dict[str, Descriptor]
    cache: Cache
    timings: dict[str, float] = field(default_factory=dict)
    layers: dict[str, list[Layer]] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.plan.action.version


def zflow_tree() -> dict[str, bytes]:
    """The zflow package's source files as the image's runtime ships them."""
    root = Path(zflow.__file__).resolve().parent
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in _DATA_SUFFIXES and "__pycache__" not in p.parts:
            out["zflow/" + p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def source_epoch(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise UserError(f"SOURCE_DATE_EPOCH must be an integer (seconds since 1970), got {env!r}") from None
    return DEFAULT_EPOCH


def _inputs(plan: Plan, index_url: str, mirror: str, epoch: int, zflow_sha: str) -> LockInputs:
    return LockInputs(
        action_id=plan.action.id, action_version=plan.action.version, python=plan.python, suite=plan.suite,
        mirror=mirror, index_url=index_url, platforms=plan.platforms, source_date_epoch=epoch,
        requirements=plan.requirements, constraints=plan.constraints, runtime_requirements=plan.runtime_requirements,
        debian_packages=plan.debian_packages, files=plan.files, zflow_sha256=zflow_sha)


# Resolutions made by this process, by their inputs: a workflow's actions share their Debian base
# (one mmdebstrap per architecture), and equal requirement sets share one pip resolution.
_RESOLVED: dict[str, Any] = {}


def _once(key: object, make: Callable[[], Any], fresh: bool = False) -> Any:
    k = key_of(key)
    if fresh or k not in _RESOLVED:
        _RESOLVED[k] = make()
    return _RESOLVED[k]


def _memo_layer(cache: Cache, kind: str, key_value: object, make: Callable[[], Layer]) -> Layer:
    key = key_of([LAYER_FORMAT, kind, key_value])
    memo = cache.memo_get("layer", key)
    if memo and cache.has(memo["digest"]):
        return Layer(**memo)
    layer = make()
    cache.memo_put("layer", key, layer.to_json())
    return layer


def _wheel_layer(cache: Cache, ws: list[Wheel], prefix: str, epoch: int, extra: dict[str, bytes],
                 extra_sha: str, created_by: str, offline: bool) -> Layer:
    def make() -> Layer:
        entries: list[Entry] = []
        for w in ws:
            entries.extend(wheels.wheel_entries(wheels.fetch(w, cache, offline), prefix))
        entries.extend(Entry(f"{prefix}/{name}", "file", data) for name, data in extra.items())
        return write_layer(entries, cache, epoch, created_by)
    return _memo_layer(cache, "wheels", [prefix, [w.sha256 for w in ws], extra_sha, epoch, created_by], make)


def build_action(directory: str | Path, opts: BuildOptions | None = None) -> BuildOutcome:
    """Build (or rebuild from the lock) the action's image into the cache; returns its digests."""
    opts = opts or BuildOptions()
    cache = opts.cache or Cache()
    say: Progress = opts.progress or (lambda step, detail: None)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    plan = plan_action(directory, opts.platforms)
    d = plan.action.directory
    epoch = source_epoch(opts.epoch)
    tree = zflow_tree()
    zflow_sha = wheels.tree_digest(tree)
    offline = opts.lock == "frozen"
    old = require_lock(d) if offline else read_lock(d)
    # a frozen build reads the mirror and the index from the lock; every other input must be unchanged
    mirror = old.inputs.mirror if offline and old else opts.mirror or rootfs.configured_mirror()
    index_url = old.inputs.index_url if offline and old else opts.index_url
    inputs = _inputs(plan, index_url, mirror, epoch, zflow_sha)
    say("resolve", f"{plan.action.id} {plan.action.version}: Python {plan.python} on Debian {plan.suite}, "
                   f"{len(plan.requirements)} requirements, platforms {', '.join(plan.platforms)}")
    if offline and old is not None and (problems := frozen_problems(d, old.inputs, inputs)):
        raise UserError(problems)
    reused = _reusable(old, inputs, opts.lock, cache)
    if reused is not None:
        debs, wheel_sets = reused.debs, reused.wheels
    else:
        wheel_sets, debs = _resolve(plan, index_url, mirror, epoch, cache, opts.lock == "update", say, timings)
    t = time.monotonic()
    for wheel_set in wheel_sets.values():
        for w in wheel_set:
            wheels.fetch(w, cache, offline)
    timings["download wheels"] = time.monotonic() - t
    t = time.monotonic()
    layers, manifests, platform_digests = _images(plan, debs, wheel_sets, cache, epoch, tree, zflow_sha, offline,
                                                  say)
    index = image_index(cache, manifests, _labels(plan))
    timings["layers"] = time.monotonic() - t
    lock = Lock(inputs=inputs, debs=debs, wheels=wheel_sets,
                builder=reused.builder if reused else BuilderFacts(
                    zflow_version=zflow.__version__, host_python=_host_python(), pip=wheels.pip_version(),
                    mmdebstrap=rootfs.mmdebstrap_version()),
                digests=Digests(index=index.digest, platforms=platform_digests))
    if not offline:
        write_lock(d, lock)
    elif old is not None and old.digests is not None and old.digests.index != index.digest:
        raise RuntimeFailure(f"--lock frozen rebuilt index {index.digest} but the lock expects "
                             f"{old.digests.index}: the builder itself changed (layer format or zlib)")
    timings["total"] = time.monotonic() - t0
    return BuildOutcome(plan=plan, lock=lock, index=index, manifests=manifests, cache=cache, timings=timings,
                        layers=layers)


def _reusable(old: Lock | None, inputs: LockInputs, mode: str, cache: Cache) -> Lock | None:
    """The lock whose debs and wheels this build can use as they are, if any.

    ``auto`` reuses a lock while the inputs that drive resolution hold and its packages are in
    the cache (else it resolves again); ``frozen`` must reuse it; ``update`` never does.
    """
    if old is None or mode == "update" or changed_inputs(old.inputs, inputs, RESOLUTION_FIELDS):
        return None
    missing = [deb.filename for ds in old.debs.values() for deb in ds if not cache.has("sha256:" + deb.sha256)]
    if missing and mode == "frozen":
        raise RuntimeFailure(f"{len(missing)} Debian package(s) of the lock are not in the build cache "
                             f"{cache.root} (first: {missing[0]}); run a build without --lock frozen once")
    return None if missing else old


def _resolve(plan: Plan, index_url: str, mirror: str, epoch: int, cache: Cache, fresh: bool, say: Progress,
             timings: dict[str, float]) -> tuple[dict[str, list[Wheel]], dict[str, list[Deb]]]:
    """Wheels, then Debian packages, per architecture (wheels first: a bad package fails fastest)."""
    wheel_sets: dict[str, list[Wheel]] = {}
    debs: dict[str, list[Deb]] = {}
    for arch in plan.arches:
        t = time.monotonic()
        wheel_sets[arch.name] = _once(
            ["wheels", arch.name, plan.python, plan.requirements, plan.runtime_requirements, plan.constraints,
             index_url],
            partial(wheels.resolve, arch, plan.python, plan.requirements, plan.runtime_requirements,
                    plan.constraints, index_url), fresh)
        timings[f"wheels {arch.name}"] = time.monotonic() - t
        say("wheels", f"linux/{arch.name}: {len(wheel_sets[arch.name])} wheels")
    wheels.check_across_arches(wheel_sets)
    for arch in plan.arches:
        t = time.monotonic()
        debs[arch.name] = _once(
            ["debs", plan.suite, arch.name, plan.debian_packages, mirror, str(cache.root)],
            partial(rootfs.fetch_debs, plan.suite, arch.name, plan.debian_packages, mirror, cache, epoch), fresh)
        timings[f"base {arch.name}"] = time.monotonic() - t
        say("base", f"linux/{arch.name}: {len(debs[arch.name])} Debian packages")
    return wheel_sets, debs


def _labels(plan: Plan) -> dict[str, str]:
    return {"org.opencontainers.image.title": plan.action.id, "org.opencontainers.image.version": plan.action.version}


def _images(plan: Plan, debs: dict[str, list[Deb]], wheel_sets: dict[str, list[Wheel]], cache: Cache, epoch: int,
            tree: dict[str, bytes], zflow_sha: str, offline: bool, say: Progress,
            ) -> tuple[dict[str, list[Layer]], dict[str, Descriptor], dict[str, PlatformDigests]]:
    """Four layers, a config and a manifest per architecture."""
    d = plan.action.directory
    app_files = {rel: (d / rel).read_bytes() for rel in plan.files}
    config = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"PYTHONPATH=/{ROOT}/deps:/{ROOT}/runtime", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
                f"ZFLOW_ACTION_DIR=/{ROOT}/action"],
        "Entrypoint": [plan.interpreter, "-m", "zflow.build.run_action", f"/{ROOT}/action"],
        "WorkingDir": f"/{ROOT}/action",
    }
    layers: dict[str, list[Layer]] = {}
    manifests: dict[str, Descriptor] = {}
    platform_digests: dict[str, PlatformDigests] = {}
    for arch in plan.arches:
        arch_debs, ws = debs[arch.name], wheel_sets[arch.name]
        base = _memo_layer(cache, "base", [[x.sha256 for x in arch_debs], epoch], partial(
            lambda ds: write_layer(rootfs.base_entries(ds, cache), cache, epoch,
                                   f"zflow build: base, Debian {plan.suite} ({len(ds)} packages)"), arch_debs))
        runtime = _wheel_layer(cache, [w for w in ws if w.layer == "runtime"], f"{ROOT}/runtime", epoch, tree,
                               zflow_sha, "zflow build: zflow runtime and its wheels", offline)
        deps = _wheel_layer(cache, [w for w in ws if w.layer == "deps"], f"{ROOT}/deps", epoch, {}, "",
                            "zflow build: action dependencies", offline)
        app = _memo_layer(cache, "app", [plan.files, epoch], lambda: write_layer(
            [Entry(f"{ROOT}/action/{rel}", "file", data) for rel, data in app_files.items()], cache, epoch,
            f"zflow build: action {plan.action.id} {plan.action.version}"))
        layers[arch.name] = [base, runtime, deps, app]
        manifest, config_desc = image(cache, arch.name, layers[arch.name], epoch, config, _labels(plan))
        manifests[arch.name] = manifest
        platform_digests[arch.name] = PlatformDigests(
            manifest=manifest.digest, config=config_desc.digest,
            layers=[x.digest for x in layers[arch.name]], diff_ids=[x.diff_id for x in layers[arch.name]])
        say("image", f"linux/{arch.name} {manifest.digest}")
    return layers, manifests, platform_digests


def _host_python() -> str:
    import platform

    return platform.python_version()


def export_layout(outcome: BuildOutcome, dest: Path) -> Path:
    write_layout(outcome.cache, outcome.index, dest, outcome.tag)
    return dest


def platform_lines(outcome: BuildOutcome) -> list[str]:
    return [f"linux/{arch} {m.digest}" for arch, m in outcome.manifests.items()]


__all__ = ["ARCHES", "BuildOptions", "BuildOutcome", "build_action", "export_layout", "platform_lines"]
