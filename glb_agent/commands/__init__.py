"""CLI subcommands; each module exposes ``register(subparsers)``.

Every flag that more than one command takes is defined here once, so it is spelled, typed
and documented the same everywhere: the config file (``CONFIG`` or ``--config``), the host
(``--name``), ``--xdp-mode``, ``--pin-dir`` and ``--state-dir``. Old spellings stay as
aliases for one release and say so in ``--help`` (:data:`DEPRECATED`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from glb_agent.util import paths

Handler = Callable[[argparse.Namespace], int]

XDP_MODES = ("auto", "native", "generic")
DEPRECATED = "old spelling, kept as an alias for one release"


def add_config_argument(parser: argparse.ArgumentParser, default: Path | None = None) -> None:
    """glb.yml as ``CONFIG`` or ``--config CONFIG``: every command accepts both spellings,
    so units, roles and operators cannot get it wrong (cli.main resolves the two and
    rejects two different files; ``default`` is used when neither is given)."""
    where = f" (default {default})" if default else ""
    parser.add_argument("config", nargs="?", help=f"path to glb.yml{where}; or --config CONFIG")
    parser.add_argument("--config", dest="config_option", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.set_defaults(config_default=default)


def add_name_argument(parser: argparse.ArgumentParser, role: str, *, required: bool = False,
                      old: Sequence[str] = (), default: str = "the one whose address is local here") -> None:
    """``--name``: which entry of glb.yml this host is; ``old`` are deprecated aliases."""
    default = "" if required else f" (default: {default})"
    alias = f"; {', '.join(old)}: {DEPRECATED}" if old else ""
    parser.add_argument("--name", *old, dest="name", required=required, metavar="NAME",
                        help=f"this host's {role} name in glb.yml{default}{alias}")


def add_xdp_mode_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--xdp-mode", choices=XDP_MODES, default="auto",
                        help="auto: native (driver) mode, falling back to generic (SKB) mode")


def add_pin_dir_argument(parser: argparse.ArgumentParser, kind: paths.DataPlaneKind) -> None:
    """``--pin-dir``; None selects the convention of ``glb_agent.util.paths``."""
    default = paths.PIN_ROOT / kind / "<interface>"
    parser.add_argument("--pin-dir", type=Path, default=None,
                        help=f"bpffs directory of the {kind} data plane's pins (default {default})")


def add_state_dir_argument(parser: argparse.ArgumentParser, kind: paths.DataPlaneKind, what: str) -> None:
    """``--state-dir``; None selects ``paths.director_state_dir()`` / ``paths.proxy_state_dir()``."""
    default = (f"${paths.STATE_DIR_ENV} or {paths.STATE_ROOT / 'director'}" if kind == "director"
               else str(paths.STATE_ROOT / "proxy"))
    parser.add_argument("--state-dir", type=Path, default=None, help=f"{what} (default {default})")


def add_host_actions(sub: argparse._SubParsersAction, command: paths.DataPlaneKind, *, help: str,
                     description: str, actions: Sequence[tuple[str, Handler, str, Sequence[str]]],
                     extra: Callable[[str, argparse.ArgumentParser], None]) -> None:
    """``glb-agent director|proxy apply|stop|status``: one verb set for both data planes.

    Every action names this host's entry of the config the same way (CONFIG, --name,
    --pin-dir, --json); ``extra(action, parser)`` adds the rest. The fourth field of an
    action lists old verbs accepted as aliases for one release (shown in ``--help``).
    """
    p = sub.add_parser(command, help=help, description=description)
    subs = p.add_subparsers(dest=f"{command}_action", metavar="ACTION", parser_class=type(p))
    subs.required = True
    for name, func, text, aliases in actions:
        note = f" (alias {', '.join(aliases)}: {DEPRECATED})" if aliases else ""
        a = subs.add_parser(name, aliases=list(aliases), help=text + note, description=text + note)
        add_config_argument(a)
        add_name_argument(a, command)
        add_pin_dir_argument(a, command)
        extra(name, a)
        a.add_argument("--json", action="store_true", help="machine-readable output")
        a.set_defaults(func=func)
