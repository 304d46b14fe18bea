"""``glb-agent``: one entry point for operators, Ansible roles, systemd units and the lab.

Exit codes (documented in README): 0 success; 1 the operation failed (a system error,
a failed check); 2 bad input (YAML, JSON, binary files, arguments) — and then nothing
was written or applied.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from glb_agent import __version__
from glb_agent.errors import GlbError, InputError

# Each module exposes register(subparsers); handlers are set with set_defaults(func=...)
# and return an exit code.
COMMAND_MODULES = (
    "glb_agent.commands.validate",
    "glb_agent.commands.render",
    "glb_agent.commands.table",
    "glb_agent.commands.director",
    "glb_agent.commands.proxy",
    "glb_agent.commands.bgp",
    "glb_agent.commands.health",
    "glb_agent.commands.agent",
    "glb_agent.commands.lab",
    "glb_agent.commands.units",
)

EXIT_BAD_INPUT = InputError.exit_code  # argparse usage errors are bad input too


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message but add our prefix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"glb-agent: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="glb-agent",
        description="Drive a GLB-style load balancer fleet from one declarative YAML.",
        epilog="exit codes: 0 ok, 1 operation failed, 2 bad input (nothing applied)",
    )
    parser.add_argument("--version", action="version", version=f"glb-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed arguments with CONFIG / --config resolved into ``args.config`` (exit 2 on misuse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "config_option"):  # commands using commands.add_config_argument
        if args.config and args.config_option and args.config != args.config_option:
            parser.error("give the config once: CONFIG or --config CONFIG")
        args.config = args.config or args.config_option or args.config_default
        if not args.config:
            parser.error(f"{args.command}: the config file is required (CONFIG or --config CONFIG)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GlbError as exc:  # InputError: 2 (nothing applied); any other GlbError: 1
        _report(args, exc, exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _report(args: argparse.Namespace, exc: Exception, code: int) -> None:
    if getattr(args, "json", False):
        problems = getattr(exc, "problems", None) or [str(exc)]
        print(json.dumps({"ok": False, "exit_code": code, "errors": problems}, indent=2))
    else:
        # Problems already start with file:line (compiler style, so editors can jump there).
        for line in str(exc).splitlines():
            print(line if isinstance(exc, InputError) else f"glb-agent: error: {line}",
                  file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
