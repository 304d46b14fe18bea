"""CLI subcommands; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """glb.yml as ``CONFIG`` or ``--config CONFIG``: every command accepts both spellings,
    so units, roles and operators cannot get it wrong (cli.main resolves the two)."""
    parser.add_argument("config", nargs="?", help="path to glb.yml (or --config)")
    parser.add_argument("--config", dest="config_option", metavar="CONFIG", help=argparse.SUPPRESS)
