"""``zflow tsdb``: the erasure-coded time-series store from the command line.

A dataset config (YAML/JSON) names the schema (inline or a file) and the locations::

    schema: intel.schema.json
    locations: [file:///srv/a, http://127.0.0.1:9001, zenoh:site-b]
    zenoh: {connect: [tcp/127.0.0.1:7447]}
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zflow.cli.args import non_negative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tsdb", help="erasure-coded time-series store")
    ts = p.add_subparsers(dest="tsdb_command", metavar="SUBCOMMAND")
    p.set_defaults(handler=lambda a: (p.print_help(), 2)[1])

    c = ts.add_parser("infer", help="infer a schema from a CSV file")
    c.add_argument("file")
    c.add_argument("--name", help="dataset name (default: from the file name)")
    c.add_argument("-k", type=positive_int, default=4)
    c.add_argument("-n", type=positive_int, default=6)
    c.add_argument("-o", "--output", help="write the schema here instead of stdout")
    c.set_defaults(handler=_infer)

    c = ts.add_parser("create", help="create a dataset from a config")
    c.add_argument("config")
    c.set_defaults(handler=_create)

    c = ts.add_parser("ingest", help="ingest CSV/JSONL files")
    c.add_argument("config")
    c.add_argument("files", nargs="+")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--skip-bad-rows", action="store_true",
                   help="leave out rows that cannot be stored as they are (each one listed, counted); "
                        "by default one bad row refuses the whole ingest")
    c.set_defaults(handler=_ingest)

    c = ts.add_parser("query", help="query with filter/projection")
    c.add_argument("config")
    c.add_argument("selector", nargs="?", default="", help="e.g. 'filter=temp>30;mote=7&cols=time,temp'")
    c.add_argument("--filter", help="e.g. 'temp>30;mote=7|hum<20'")
    c.add_argument("--cols", help="comma-separated projected columns")
    c.add_argument("--time", help="a..b (epoch seconds or ISO dates)")
    c.add_argument("--limit", type=non_negative_int, help="at most this many rows (a non-negative integer)")
    c.add_argument("--format", choices=["table", "csv", "json"], default="table")
    c.add_argument("--report", action="store_true", help="print the fetch report to stderr")
    c.add_argument("--verify", action="store_true",
                   help="check chunk checksums end to end, here (by default each location checks "
                        "them before serving; this also distrusts the location and the network)")
    c.add_argument("--allow-partial", action="store_true",
                   help="when objects of the dataset cannot be read, print the rows of the others "
                        "(with a warning, exit code 1) instead of failing")
    c.set_defaults(handler=_query)

    for name, fn, help_ in (("stats", _stats, "storage overhead, compression, per-location bytes"),
                            ("verify", _verify, "check every fragment's chunk checksums"),
                            ("repair", _repair, "rebuild lost/corrupted fragments and catalog replicas")):
        c = ts.add_parser(name, help=help_)
        c.add_argument("config")
        c.add_argument("--json", action="store_true")
        if name == "repair":
            c.add_argument("--location", action="append", help="only rebuild on these locations")
        c.set_defaults(handler=fn)

    c = ts.add_parser("json-schema", help="JSON Schema of the dataset schema and config files")
    c.add_argument("-o", "--output-dir", help="write tsdb-schema.json and tsdb-dataset.json here")
    c.set_defaults(handler=_json_schema)

    c = ts.add_parser("serve", help="run the Zenoh storage front")
    c.add_argument("config")
    c.add_argument("--connect", action="append", default=[])
    c.add_argument("--listen", action="append", default=[])
    c.add_argument("--mode", default="client", choices=["client", "peer", "router"])
    c.set_defaults(handler=_serve)



def _open(path: str, repair: bool = False) -> Any:
    from zflow.tsdb import open_dataset

    return open_dataset(path, repair=repair)


def _warn_catalog(report: dict) -> None:
    """Say on stderr what a result lacks or where its metadata came from."""
    if report.get("partial"):
        lost = report["partial"]["objects_lost"]
        print(f"warning: PARTIAL result: {len(lost)} object(s) of the dataset cannot be read and their "
              f"rows are missing ({', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''}); "
              "run `zflow tsdb verify` and `zflow tsdb repair`", file=sys.stderr)
    if report.get("catalog_recovered"):
        rec = report["catalog_recovered"]
        print(f"warning: the catalog entries of {len(rec)} object(s) are corrupted on every location; "
              "they were read from the objects' fragments (the result is complete); "
              "run `zflow tsdb repair`", file=sys.stderr)


def _infer(args: argparse.Namespace) -> int:
    from zflow.tsdb import infer_schema

    schema, notes = infer_schema(args.file, args.name, args.k, args.n)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    text = schema.to_json() + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _create(args: argparse.Namespace) -> int:
    from zflow.tsdb import create_dataset

    with create_dataset(args.config) as ds:
        print(f"created dataset '{ds.name}' on {len(ds.stores)} locations "
              f"(k={ds.schema.coding.k}, n={ds.schema.coding.n})")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from zflow.tsdb.ingest.readers import MAX_LISTED

    with _open(args.config) as ds:
        total, skipped = ds.ingest_files(args.files, progress=not args.no_progress,
                                         skip_bad=args.skip_bad_rows)
        for b in skipped[:MAX_LISTED]:
            print(f"skipped {b.problem().render()}", file=sys.stderr)
        if len(skipped) > MAX_LISTED:
            print(f"skipped ... and {len(skipped) - MAX_LISTED:,} more bad row(s)", file=sys.stderr)
        st = ds.stats()
        note = f" (skipped {len(skipped):,} bad row(s))" if skipped else ""
        print(f"ingested {total:,} rows{note}; dataset has {st['rows']:,} rows in {st['objects']} objects")
    return 0


def _query(args: argparse.Namespace) -> int:
    if args.cols is not None and not args.cols.strip():
        from zflow.errors import UserError

        raise UserError("--cols: expected comma-separated column names, found nothing")
    with _open(args.config) as ds:
        res = ds.query(args.selector, filter=args.filter,
                       cols=args.cols.split(",") if args.cols else None, time=args.time, limit=args.limit,
                       verify=args.verify, partial=args.allow_partial)
    cols = res.columns
    if args.format == "json":
        print(json.dumps(res.to_json()))
    else:
        names = list(cols)
        sep = "," if args.format == "csv" else "\t"
        print(sep.join(names))
        for i in range(len(res)):
            print(sep.join(str(cols[c][i]) for c in names))
    if args.report:
        print(json.dumps(res.report, indent=2), file=sys.stderr)
    _warn_catalog(res.report)
    return 1 if res.report.get("partial") else 0


def _print(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2))
        return
    for k, v in obj.items():
        if isinstance(v, dict):
            print(f"{k}:")
            for k2, v2 in v.items():
                print(f"  {k2}: {v2}")
        elif isinstance(v, list):
            print(f"{k}: {len(v)}")
            for item in v:
                print(f"  {item}")
        else:
            print(f"{k}: {v}")


def _stats(args: argparse.Namespace) -> int:
    with _open(args.config) as ds:
        st = ds.stats()
    _print(st, args.json)
    if st["objects_lost"]:
        print(f"warning: {len(st['objects_lost'])} object(s) cannot be read: rows and bytes exclude them; "
              "run `zflow tsdb verify` and `zflow tsdb repair`", file=sys.stderr)
        return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _open(args.config) as ds:
        rep = ds.verify()
    _print(rep, args.json)
    damage = ("missing", "corrupt", "unreachable", "catalog_corrupt", "catalog_missing", "objects_lost")
    return 1 if any(rep[k] for k in damage) else 0


def _repair(args: argparse.Namespace) -> int:
    with _open(args.config, repair=True) as ds:
        names = [s.name for s in ds.stores]
        unknown = [n for n in args.location or [] if n not in names]
        if unknown:
            from zflow.errors import Problem, UserError, did_you_mean

            raise UserError([Problem(f"--location {n!r} is not a location of the dataset",
                                     hint=did_you_mean(n, names) or f"one of {names}") for n in unknown])
        rep = ds.repair(args.location)
    _print(rep, args.json)
    if rep["failed"]:
        print(f"error: {len(rep['failed'])} thing(s) could not be repaired (listed under failed)", file=sys.stderr)
        return 1
    return 0


def _json_schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zflow.documents import dump_schema
    from zflow.tsdb import DatasetConfig, Schema

    if args.output_dir:
        dump_schema(Schema, Path(args.output_dir) / "tsdb-schema.json")
        dump_schema(DatasetConfig, Path(args.output_dir) / "tsdb-dataset.json")
    else:
        print(json.dumps({"schema": Schema.model_json_schema(),
                          "dataset": DatasetConfig.model_json_schema()}, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)

    from zflow.process import StopSignal
    from zflow.transport.session import SessionOptions, open_session
    from zflow.tsdb.serving.zenoh_front import Front

    stop = StopSignal().install()
    with _open(args.config) as ds, \
            open_session(SessionOptions(mode=args.mode, connect=args.connect, listen=args.listen)) as s, \
            Front(ds, s):
        from zflow import keyexprs

        print(f"serving dataset '{ds.name}' on {keyexprs.tsdb(ds.name, '**')}", flush=True)
        stop.wait()
    return 0
