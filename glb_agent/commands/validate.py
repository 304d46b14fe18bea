"""``glb-agent validate``: check the YAML without touching anything."""

from __future__ import annotations

import argparse
import json

from glb_agent.commands import add_config_argument
from glb_agent.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check glb.yml; print every problem as file:line: path: message",
        description="Validate the fleet YAML. Exit 0 if valid, 2 with one line per problem.",
    )
    add_config_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)
    register_reference(sub)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config).config
    summary = {
        "ok": True,
        "fleet": cfg.fleet.name,
        "services": [s.name for s in cfg.services],
        "directors": [d.name for d in cfg.directors],
        "proxies": [p.name for p in cfg.proxies],
        "backends": sum(len(s.backends) for s in cfg.services),
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
    from glb_agent.config.reference import reference_markdown

    print(reference_markdown(), end="")
    return 0
