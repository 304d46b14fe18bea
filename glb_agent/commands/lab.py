"""``glb-agent lab up|down|status|demo|apply|switch``: the namespace lab (see glb_agent/lab/run.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glb_agent.commands import add_config_argument
from glb_agent.lab import run as lab


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the whole fleet in network namespaces on this machine",
                       description="Router (BIRD, ECMP), directors (XDP + ExaBGP), proxies (eBPF decap "
                       "+ HTTP) and a client, in namespaces, from the lab YAML.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (("up", _up, "build the lab (removes a previous one first)"),
                             ("down", _down, "remove everything the lab made, even after a crash"),
                             ("status", _status, "namespaces, router routes, director state"),
                             ("demo", _demo, "send requests to the VIP and report who served them")):
        a = actions.add_parser(name, help=text, description=text)
        add_config_argument(a, default=Path(lab.DEFAULT_CONFIG))  # down ignores it
        if name in ("status", "demo"):
            a.add_argument("--json", action="store_true")
        a.set_defaults(func=func)
    ap = actions.add_parser(
        "apply", help="make an edit of the lab's glb.yml live on its directors",
        description="Derive the running lab's own glb.yml (/run/glb-lab/glb.yml) again from CONFIG "
                    "(default: the lab inventory's, as for lab up), keeping `lab switch` choices, and "
                    "run `glb-agent apply` for every running director (or the --name ones): table diff, "
                    "rows-at-risk guard, reload. Editing the source file alone changes nothing in a "
                    "running lab.")
    add_config_argument(ap, default=Path(lab.DEFAULT_CONFIG))  # as lab up's default
    ap.add_argument("--name", action="append", dest="directors", metavar="NAME",
                    help="only this director (repeatable)")
    ap.add_argument("--force", action="store_true", help="apply even if the edit puts rows at risk")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds each apply waits")
    ap.set_defaults(func=_apply)
    sw = actions.add_parser(
        "switch", help="switch one director between the XDP and DPDK data planes, drained",
        description="Edit the running lab's glb.yml (/run/glb-lab/glb.yml) so DIRECTOR runs DATAPLANE and "
                    "run `glb-agent apply` for it, as on a real host: its agent withdraws the VIPs, waits "
                    "until no VIP packet arrives, stops the old data plane, starts the new one with the "
                    "same tables and re-announces once it is ready. Connections keep going through the "
                    "other directors meanwhile.")
    sw.add_argument("director", help="a director of the lab, e.g. d1")
    sw.add_argument("dataplane", choices=("xdp", "dpdk"))
    sw.add_argument("--timeout", type=float, default=60.0, help="seconds apply waits for the switch")
    sw.set_defaults(func=_switch)


def _apply(args: argparse.Namespace) -> int:
    print(lab.apply(Path(args.config) if args.config else None, args.directors,
                    *(["--force"] if args.force else []), timeout=args.timeout), end="")
    return 0


def _switch(args: argparse.Namespace) -> int:
    print(lab.switch_dataplane(args.director, args.dataplane, timeout=args.timeout), end="")
    return 0


def _up(args: argparse.Namespace) -> int:
    lab.up(Path(args.config))
    return 0


def _down(args: argparse.Namespace) -> int:
    lab.down()
    return 0


def _status(args: argparse.Namespace) -> int:
    doc = lab.status(Path(args.config))
    print(json.dumps(doc, indent=2) if args.json else _status_text(doc))
    return 0 if doc["namespaces"] else 1


def _status_text(doc: dict) -> str:
    lines = [f"namespaces: {', '.join(doc['namespaces']) or 'none'}"]
    lines += [f"route {vip} via {', '.join(h) or 'NOTHING'}" for vip, h in doc["routes"].items()]
    for name, d in doc["directors"].items():
        plane = (d.get("agent") or {}).get("dataplane") or "xdp"  # older agents wrote none: XDP
        lines.append(f"director {name} ({plane}): announced "
                     f"{', '.join(d['bgp'].get('announced', [])) or 'nothing'}")
        if d.get("bfd") is not None:
            lines.append(f"director {name}: BFD {_sessions_text(d['bfd'])}")
    if doc.get("router_bfd") is not None:
        lines.append(f"router BFD {_sessions_text(doc['router_bfd'])}")
    return "\n".join(lines)


def _sessions_text(sessions: dict[str, str]) -> str:
    """BFD sessions as `peer state` pairs, or why there are none (BFD off, speaker not up)."""
    return ", ".join(f"{peer} {state}" for peer, state in sorted(sessions.items())) or "no sessions"


def _demo(args: argparse.Namespace) -> int:
    report = lab.demo(Path(args.config))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0 if report["failures"] == 0 else 1
