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
    c.set_defaults(handler=_ingest)

    c = ts.add_parser("query", help="query with filter/projection")
    c.add_argument("config")
    c.add_argument("selector", nargs="?", default="", help="e.g. 'filter=temp>30;mote=7&cols=time,temp'")
    c.add_argument("--filter", help="e.g. 'temp>30;mote=7|hum<20'")
    c.add_argument("--cols", help="comma-separated projected columns")
    c.add_argument("--time", help="a..b (epoch seconds or ISO dates)")
    c.add_argument("--limit", type=non_negative_int)
    c.add_argument("--format", choices=["table", "csv", "json"], default="table")
    c.add_argument("--report", action="store_true", help="print the fetch report to stderr")
    c.add_argument("--verify", action="store_true",
                   help="check chunk checksums end to end, here (by default each location checks "
                        "them before serving; this also distrusts the location and the network)")
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


def _open(path: str) -> Any:
    from zflow.tsdb.store import Dataset

    return Dataset.from_config(path)


def _infer(args: argparse.Namespace) -> int:
    from zflow.tsdb.infer import infer

    schema, notes = infer(args.file, args.name, args.k, args.n)
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
    from zflow.tsdb.store import Dataset

    with Dataset.from_config(args.config, create=True) as ds:
        print(f"created dataset '{ds.name}' on {len(ds.stores)} locations "
              f"(k={ds.schema.coding.k}, n={ds.schema.coding.n})")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    with _open(args.config) as ds:
        total = 0
        for f in args.files:
            total += ds.ingest(f, progress=not args.no_progress)
        ds.flush()
        st = ds.stats()
        print(f"ingested {total:,} rows; dataset has {st['rows']:,} rows in {st['objects']} objects")
    return 0


def _query(args: argparse.Namespace) -> int:
    with _open(args.config) as ds:
        res = ds.query(args.selector, filter=args.filter,
                       cols=args.cols.split(",") if args.cols else None, time=args.time, limit=args.limit,
                       verify=args.verify)
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
    return 0


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
        _print(ds.stats(), args.json)
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _open(args.config) as ds:
        rep = ds.verify()
    _print(rep, args.json)
    return 0 if not (rep["missing"] or rep["corrupt"] or rep["unreachable"]) else 1


def _repair(args: argparse.Namespace) -> int:
    with _open(args.config) as ds:
        _print(ds.repair(args.location), args.json)
    return 0


def _json_schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zflow.documents import dump_schema
    from zflow.tsdb.schema import Schema
    from zflow.tsdb.store import DatasetConfig

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

    from zflow.runtime.signals import StopSignal
    from zflow.transport.session import SessionOptions, open_session
    from zflow.tsdb.front import Front

    stop = StopSignal().install()
    with _open(args.config) as ds, \
            open_session(SessionOptions(mode=args.mode, connect=args.connect, listen=args.listen)) as s, \
            Front(ds, s):
        from zflow import keyexprs

        print(f"serving dataset '{ds.name}' on {keyexprs.tsdb(ds.name, '**')}", flush=True)
        stop.wait()
    return 0
