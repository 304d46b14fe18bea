"""``glb-agent units director|proxy``: this host's systemd units, from the installed agent.

The units' contract (``Type=notify`` after the first table load, ExaBGP ordered after and
stopped with the director, the proxy's oneshot apply) is versioned with the code it starts
(``glb_agent/systemd/``); the Ansible roles only supply the host's name and paths. Printed
as one JSON object ``{unit: text}`` (what the roles copy into place, so Ansible reports
changes unit by unit), or written atomically into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glb_agent.commands import add_config_argument, add_name_argument
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director, this_proxy
from glb_agent.systemd import DIRECTOR_UNITS, DPDK_DIRECTOR_UNITS, PROXY_UNITS, UnitSettings, render_units
from glb_agent.util.files import write_atomic

DEFAULTS = UnitSettings(name="-")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "units", help="print (or write) this host's systemd units for the director or proxy role",
        description="Render the systemd units of one role for one host of glb.yml: the director "
                    "role gets glb-director.service and exabgp.service, the proxy role "
                    "glb-proxy.service. The host must be in glb.yml (exit 2 otherwise).")
    p.add_argument("role", choices=("director", "proxy"))
    add_config_argument(p)
    add_name_argument(p, "director or proxy")
    p.add_argument("--agent", type=Path, default=DEFAULTS.agent,
                   help=f"glb-agent on the host (default {DEFAULTS.agent})")
    p.add_argument("--exabgp", type=Path, default=DEFAULTS.exabgp,
                   help=f"director role: the exabgp executable (default {DEFAULTS.exabgp})")
    p.add_argument("--exabgp-conf", type=Path, default=DEFAULTS.exabgp_conf,
                   help=f"director role: the rendered exabgp.conf (default {DEFAULTS.exabgp_conf})")
    p.add_argument("--metrics-port", type=int, default=DEFAULTS.metrics_port,
                   help=f"director role: the agent's metrics port (default {DEFAULTS.metrics_port})")
    p.add_argument("--out", type=Path, default=None,
                   help="write the units into this directory (atomically, only when changed) "
                        "instead of printing them as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)  # the host must exist in the file the units will run with
    if args.role == "director":
        me = this_director(loaded, args.name, strict=True)
        name, units = me.name, DPDK_DIRECTOR_UNITS if me.dataplane == "dpdk" else DIRECTOR_UNITS
    else:
        name, units = this_proxy(loaded, args.name, strict=True).name, PROXY_UNITS
    settings = UnitSettings(name=name, config=Path(args.config).absolute(), agent=args.agent,
                            exabgp=args.exabgp, exabgp_conf=args.exabgp_conf,
                            metrics_port=args.metrics_port)
    rendered = render_units(settings, units)
    if args.out is None:
        print(json.dumps(rendered, indent=2, sort_keys=True))
        return 0
    for unit, text in sorted(rendered.items()):
        path = args.out / unit
        print(f"{'wrote' if write_atomic(path, text) else 'unchanged'} {path}")
    return 0
