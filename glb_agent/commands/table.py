"""``glb-agent table build|show|diff``: make, inspect and compare forwarding tables.

``build`` is the drop-in for upstream's ``glb-director-cli build-config`` (same bytes for
the same JSON) that also takes glb.yml; ``show`` and ``diff`` read .bin, .json and .yml
alike, so "what does the director run" and "what would this change do" are one command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glb_agent.config.table_sources import JSON_SUFFIXES, load_specs, load_tables
from glb_agent.errors import InputError
from glb_agent.table import diff as table_diff
from glb_agent.table import summary, upstream_bin, upstream_json
from glb_agent.table.rendezvous import build_all


def register(sub: argparse._SubParsersAction) -> None:
    table = sub.add_parser(
        "table",
        help="build, show and diff forwarding tables (upstream GLB formats)",
        description="Forwarding tables: build from upstream JSON or glb.yml, show, diff.",
    )
    tsub = table.add_subparsers(dest="table_command", metavar="ACTION")
    tsub.required = True

    p = tsub.add_parser(
        "build",
        help="build forwarding_table.bin from upstream JSON or glb.yml",
        description="Build the 65,536-row rendezvous table of every service, byte-compatible "
        "with upstream's 'glb-director-cli build-config'. OUT ending in .json writes "
        "upstream's JSON source instead (e.g. to convert glb.yml for upstream tools).",
    )
    p.add_argument("src", metavar="SRC", help="upstream forwarding-table .json, or glb.yml")
    p.add_argument("out", metavar="OUT", help="output .bin (written atomically, mode 0644)")
    p.set_defaults(func=run_build)

    p = tsub.add_parser(
        "show",
        help="summarise a table: binds, backends, state, health, share of rows",
        description="Summarise the tables in a .bin, upstream .json or glb.yml.",
    )
    p.add_argument("file", metavar="FILE", help=".bin, .json or .yml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--rows", type=_non_negative, default=0, metavar="N", help="also list the first N rows")
    p.set_defaults(func=run_show)

    p = tsub.add_parser(
        "diff",
        help="which rows and backends a change moves",
        description="Compare two table sets (.bin, .json or .yml each), tables paired by "
        "position, backends by IP. Exit 0 whether or not they differ.",
    )
    p.add_argument("old", metavar="OLD", help=".bin, .json or .yml")
    p.add_argument("new", metavar="NEW", help=".bin, .json or .yml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_diff)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run_build(args: argparse.Namespace) -> int:
    specs = load_specs(args.src)
    out = Path(args.out)
    if out.suffix.lower() in JSON_SUFFIXES:
        changed = upstream_json.write(out, specs)
    else:
        if not out.parent.is_dir():
            raise InputError("output directory does not exist", where=str(out))
        changed = upstream_bin.write(out, specs, build_all(specs))
    total = sum(len(s.backends) for s in specs)
    note = "" if changed else " (unchanged)"
    print(f"{out}: {len(specs)} tables, {total} backends{note}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    loaded = load_tables(args.file)
    docs = [
        summary.summarize(spec, rows, i, args.rows)
        for i, (spec, rows) in enumerate(zip(loaded.specs, loaded.rows, strict=True))
    ]
    if args.json:
        print(json.dumps({"file": loaded.path, "format": loaded.kind, "tables": docs}, indent=2))
    else:
        print(f"{loaded.path} ({loaded.kind}): {len(docs)} tables")
        for doc, spec in zip(docs, loaded.specs, strict=True):
            print(summary.render_text(doc, spec))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    old, new = load_tables(args.old), load_tables(args.new)
    result = table_diff.diff_tables(old.specs, old.rows, new.specs, new.rows)
    if args.json:
        print(json.dumps({"old": old.path, "new": new.path, **table_diff.to_json(result)}, indent=2))
    else:
        print(f"--- {old.path}\n+++ {new.path}")
        print(table_diff.render_text(result))
    return 0
