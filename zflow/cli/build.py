"""``zflow build action DIR`` and ``zflow workflow build WORKFLOW``: package actions as
multi-architecture OCI images (see README, "Packaging actions")."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

from zflow.cli.args import seconds
from zflow.errors import Problem, UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="package actions as reproducible multi-architecture OCI images")
    bsub = p.add_subparsers(dest="build_cmd", metavar="SUBCOMMAND")
    a = bsub.add_parser("action", help="build one Ryax-format action directory")
    a.add_argument("dir", metavar="DIR")
    _build_args(a)
    a.add_argument("--push", metavar="REF", help="push to a registry: HOST[:PORT]/NAME[:TAG] (tag: the action version)")
    a.add_argument("--output", "-o", help="OCI image layout directory (default: build/<action id>)")
    a.add_argument("--tar", metavar="FILE", help="also write the layout as one tar (oci-archive:FILE:TAG)")
    a.add_argument("--via-zenoh", action="store_true", help="ask a builder operator on the network instead")
    a.add_argument("--connect", action="append", default=[], metavar="ENDPOINT", help="with --via-zenoh")
    a.add_argument("--timeout", type=seconds, default=900.0, help="with --via-zenoh: seconds to wait for the result")
    a.set_defaults(handler=_build_action)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def register_workflow(wsub: argparse._SubParsersAction) -> None:
    """``zflow workflow build``: registered by the workflow command's own parser."""
    w = wsub.add_parser("build", help="build the image of every action of a workflow")
    w.add_argument("file", help="workflow file, or a directory holding workflow.yaml")
    _build_args(w)
    w.add_argument("--push", metavar="PREFIX", help="push each action to PREFIX/<action id>:<version>")
    w.add_argument("--output", "-o", default="build", help="folder of the image layouts (default: build/)")
    w.set_defaults(handler=_build_workflow)


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", default="amd64,arm64", help="comma-separated: amd64, arm64 (default: both)")
    p.add_argument("--lock", choices=["auto", "update", "frozen"], default="auto",
                   help="auto: reuse zflow_lock.json while its inputs hold; update: resolve again; "
                        "frozen: rebuild exactly from the lock and the cache, offline")
    p.add_argument("--cache", help="build cache (default: $ZFLOW_BUILD_CACHE or ~/.cache/zflow/build)")
    p.add_argument("--index-url", help="Python package index (default: https://pypi.org/simple)")
    p.add_argument("--mirror", help="Debian mirror (default: the one apt is configured with here)")
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry")
    p.add_argument("--load-docker", action="store_true",
                   help="also load this machine's platform into a reachable Docker engine")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the result lines")


def _options(args: argparse.Namespace) -> Any:
    from zflow.build.cache import Cache
    from zflow.build.image import BuildOptions
    from zflow.build.resolve import parse_platforms
    from zflow.build.wheels import DEFAULT_INDEX

    def progress(step: str, detail: str) -> None:
        if not args.quiet:
            print(f"  {step}: {detail}", file=sys.stderr)

    return BuildOptions(platforms=parse_platforms(args.platform), lock=args.lock, cache=Cache(args.cache),
                        index_url=args.index_url or DEFAULT_INDEX, mirror=args.mirror, progress=progress)


def _one(directory: str, args: argparse.Namespace, output: Path, push: str | None) -> None:
    from zflow.build import docker_engine, registry
    from zflow.build.image import build_action, export_layout, platform_lines
    from zflow.build.oci_layout import write_archive

    opts = _options(args)
    ref = registry.parse_reference(push) if push else None  # a bad reference fails before building
    outcome = build_action(directory, opts)
    if ref is not None and not ref.tag:
        ref = registry.Reference(ref.host, ref.repository, outcome.tag)
    export_layout(outcome, output)
    for line in platform_lines(outcome):
        print(line)
    print(f"index {outcome.index.digest}")
    print(f"layout {output}")
    if getattr(args, "tar", None):
        write_archive(outcome.cache, outcome.index, Path(args.tar), outcome.tag)
        print(f"archive {args.tar}")
    if ref is not None:
        report = registry.push(outcome.cache, outcome.index, ref, args.insecure)
        print(f"pushed {ref}@{outcome.index.digest} ({len(report.uploaded)} blobs and manifests "
              f"uploaded, {len(report.skipped)} already there, {report.bytes_uploaded} bytes sent)")
    if args.load_docker:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        image_id = docker_engine.load(outcome.cache, outcome.index, arch,
                                      f"{outcome.plan.action.id}:{outcome.tag}")
        print(f"docker {image_id}")


def _build_action(args: argparse.Namespace) -> int:
    if args.via_zenoh:
        from zflow.build.builder_operator import request_build

        return request_build(args)
    if args.connect:
        raise UserError(Problem("--connect is only for --via-zenoh", hint="add --via-zenoh, or drop --connect"))
    from zflow.workflows.action import load_action

    output = Path(args.output) if args.output else Path("build") / load_action(args.dir).id
    _one(args.dir, args, output, args.push)
    return 0


def _build_workflow(args: argparse.Namespace) -> int:
    from zflow.workflows.workflow import load_workflow

    path = Path(args.file)
    if path.is_dir():
        path = path / "workflow.yaml"
    wf = load_workflow(path)
    seen: dict[Path, str] = {}
    for step in wf.steps.values():
        action = step.action
        if action.directory in seen:
            continue
        seen[action.directory] = action.id
        print(f"{action.id}:")
        push = f"{args.push.rstrip('/')}/{action.id}:{action.version}" if args.push else None
        _one(str(action.directory), args, Path(args.output) / action.id, push)
    return 0
