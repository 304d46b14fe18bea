"""CLI subcommands; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """glb.yml as ``CONFIG`` or ``--config CONFIG``: every command accepts both spellings,
    so units, roles and operators cannot get it wrong (cli.main resolves the two)."""
    parser.add_argument("config", nargs="?", help="path to glb.yml (or --config)")
    parser.add_argument("--config", dest="config_option", metavar="CONFIG", help=argparse.SUPPRESS)


def add_host_actions(sub: argparse._SubParsersAction, command: str, pin_default: str, *, help: str,
                     description: str, actions: Sequence[tuple[str, Handler, str]],
                     extra: Callable[[str, argparse.ArgumentParser], None]) -> None:
    """``glb-agent director|proxy ACTION``: every action names this host's entry of the config
    the same way (CONFIG, --name, --pin-dir, --json); ``extra(action, parser)`` adds the rest."""
    p = sub.add_parser(command, help=help, description=description)
    subs = p.add_subparsers(dest=f"{command}_action", metavar="ACTION", parser_class=type(p))
    subs.required = True
    for name, func, text in actions:
        a = subs.add_parser(name, help=text, description=text)
        add_config_argument(a)
        a.add_argument("--name", help=f"which {command} of the config this host is "
                                      "(default: the one whose address is local)")
        a.add_argument("--pin-dir", type=Path, default=None,
                       help=f"bpffs directory for the pins (default {pin_default})")
        extra(name, a)
        a.add_argument("--json", action="store_true", help="machine-readable output")
        a.set_defaults(func=func)

