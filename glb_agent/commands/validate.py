"""``glb-agent validate``: check the YAML without touching anything."""

from __future__ import annotations

import argparse
import json
import sys

from glb_agent.commands import add_config_argument
from glb_agent.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check glb.yml; print every problem as file:line: path: message",
        description="Validate the fleet YAML. Exit 0 if valid, 2 with one line per problem. "
                    "Warnings (legal but probably unintended) go to stderr; --strict makes them errors.",
    )
    add_config_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.add_argument("--strict", action="store_true",
                   help="treat warnings (e.g. IPv6 VIPs no director can announce) as errors: exit 2")
    p.set_defaults(func=run)
    register_reference(sub)


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    cfg = loaded.config
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    if args.strict and loaded.warnings:
        return 2
    summary = {
        "ok": True,
        "fleet": cfg.fleet.name,
        "services": [s.name for s in cfg.services],
        "directors": [d.name for d in cfg.directors],
        "proxies": [p.name for p in cfg.proxies],
        "backends": sum(len(s.backends) for s in cfg.services),
        "warnings": list(loaded.warnings),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.config}: ok: fleet {cfg.fleet.name}, {len(cfg.services)} services, "
              f"{summary['backends']} backends, {len(cfg.directors)} directors, "
              f"{len(cfg.proxies)} proxies")
    return 0


def register_reference(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config-reference", help="print the glb.yml reference (Markdown)",
                       description="Print the YAML reference generated from the config models.")
    p.set_defaults(func=_print_reference)


def _print_reference(args: argparse.Namespace) -> int:
    from glb_agent.config.docgen import reference_markdown

    print(reference_markdown(), end="")
    return 0
