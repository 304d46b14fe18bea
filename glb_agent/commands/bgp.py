"""``glb-agent bgp-feed | drain | undrain | bgp render | bgp status``: VIP announcement.

``bgp-feed`` is started by ExaBGP (see the rendered exabgp.conf), never by hand; ``drain``
and ``undrain`` are what operators type on a director before maintenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from glb_agent.bgp.api import ExaBgpPipe
from glb_agent.bgp.bfd import BfdDaemon, bfd_neighbors, render_bfd_conf
from glb_agent.bgp.bfd import sessions as bfd_sessions
from glb_agent.bgp.events import EventLog
from glb_agent.bgp.feed import Feed, FeedSettings, stop_on_signals
from glb_agent.bgp.prefixes import session_prefixes
from glb_agent.bgp.readiness import MODES, first_ready, guarded, resolve
from glb_agent.bgp.render import director_sessions, render_exabgp_conf
from glb_agent.bgp.state import (
    DrainState,
    FeedStatus,
    pid_alive,
    state_dir,
    undrain_seen,
    withdrawal_confirmed,
)
from glb_agent.commands import (
    add_config_argument,
    add_name_argument,
    add_pin_dir_argument,
    add_state_dir_argument,
)
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.errors import GlbError, InputError

WAIT_POLL = 0.05


def register(sub: argparse._SubParsersAction) -> None:
    feed = sub.add_parser(
        "bgp-feed", help="ExaBGP API process: announce VIPs while the data plane is ready",
        description="Run under ExaBGP (process section of exabgp.conf). Announces every VIP "
                    "and service cidr with next-hop self while the director data plane is ready "
                    "and the host is not drained; withdraws otherwise and on SIGTERM.")
    _config_args(feed)
    feed.add_argument("--readiness", choices=MODES, default="auto",
                      help="auto: the data plane's check if installed, else 'xdp' (a program "
                           "is attached to the director interface)")
    add_pin_dir_argument(feed, "director")
    feed.add_argument("--interval", type=_positive, default=0.2, help="readiness poll seconds")
    feed.add_argument("--rise", type=int, default=2, help="ready polls in a row before announcing")
    feed.add_argument("--session-warn", type=_positive, default=15.0, metavar="SECONDS",
                      help="log session-not-established for a BGP session down this long")
    feed.add_argument("--bfd", choices=("config", "off"), default="config",
                      help="config: run the director's BFD speaker (BIRD) while the data plane is "
                           "ready, for every peer with BFD enabled in glb.yml; off: never")
    _state_arg(feed)
    feed.set_defaults(func=run_feed)

    drain = sub.add_parser("drain", help="withdraw this director's VIPs (persists until undrain)",
                           description="Set the drain flag; the running feed withdraws within "
                                       "about one poll interval.")
    drain.add_argument("--wait", type=_positive, default=None, metavar="SECONDS",
                       help="block until the feed confirms the withdrawal (exit 1 on timeout)")
    drain.add_argument("--reason", default="", help="recorded in the flag and the feed's log")
    _state_arg(drain)
    drain.set_defaults(func=run_drain)

    undrain = sub.add_parser("undrain", help="clear the drain flag: announce again when ready")
    undrain.add_argument("--wait", type=_positive, default=None, metavar="SECONDS",
                         help="block until the feed has seen the flag cleared")
    _state_arg(undrain)
    undrain.set_defaults(func=run_undrain)

    bgp = sub.add_parser("bgp", help="BGP helpers (render exabgp.conf, show feed status)")
    bsub = bgp.add_subparsers(dest="bgp_command", metavar="SUBCOMMAND", parser_class=type(bgp))
    bsub.required = True
    render = bsub.add_parser("render", help="print exabgp.conf for a director")
    _config_args(render)
    render.add_argument("--readiness", choices=MODES, default="auto",
                        help="readiness mode passed to the feed")
    render.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the feed (absolute path)")
    render.set_defaults(func=run_render)
    router = bsub.add_parser(
        "router", help="print the lab router's BIRD 2 (or FRR) config for bgp.peers entries",
        description="The router side of the directors' sessions, from glb.yml: one BGP session per "
                    "director and IP version, VIP-only import filter, ECMP, the fleet's hold time, "
                    "BFD, TCP-MD5 and GTSM as configured. The namespace lab, the tests and the "
                    "glb_lab_router role all render this one template (bgp/bird.conf.j2).")
    add_config_argument(router)
    router.add_argument("--peer", action="append", required=True,
                        help="the router's bgp.peers name; repeat for its IPv6 entry")
    router.add_argument("--format", choices=("bird", "frr"), default="bird")
    router.add_argument("--router-id", default=None, help="default: the router's IPv4 peer address")
    router.add_argument("--max-paths", type=int, default=16, help="most next hops in one ECMP route")
    router.add_argument("--log", default="syslog",
                        help="BIRD log target ('syslog', 'stderr' or a quoted file name)")
    router.set_defaults(func=run_router)
    status = bsub.add_parser("status", help="print the feed's last confirmed state (JSON)")
    _state_arg(status)
    status.set_defaults(func=run_status)


def _config_args(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    add_name_argument(p, "director", old=("--director",))


def _state_arg(p: argparse.ArgumentParser) -> None:
    add_state_dir_argument(p, "director", "drain flag and feed status directory")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def feed_command(python: str, config: str, director: str, readiness: str) -> list[str]:
    """How ExaBGP starts the feed: absolute paths, so ExaBGP's cwd does not matter."""
    return [python, "-m", "glb_agent.cli", "bgp-feed", str(Path(config).resolve()),
            "--name", director, "--readiness", readiness]


def run_render(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    name = this_director(loaded, args.name, strict=True).name
    command = feed_command(args.python, args.config, name, args.readiness)
    print(render_exabgp_conf(loaded, name, command), end="")
    return 0


def run_feed(args: argparse.Namespace) -> int:
    if args.rise < 1:
        raise InputError("--rise must be at least 1")
    loaded = load_config(args.config)
    director = this_director(loaded, args.name, strict=True)  # never announce as someone else
    check, kind = resolve(args.readiness, director.interface, args.pin_dir)
    directory = state_dir(args.state_dir)
    if args.readiness in ("auto", "dataplane"):
        # Either data plane of this director, the configured one first (first_ready says
        # why): the DPDK director is ready while its process runs with a loaded table.
        from glb_agent.dataplane.director_config import director_settings
        from glb_agent.dataplane.dpdk import DpdkDirector, dpdk_options

        settings = director_settings(loaded, director.name, resolve=False)
        dpdk = DpdkDirector(settings, dpdk_options(director, directory)).ready
        check = first_ready(dpdk, check) if director.dataplane == "dpdk" else first_ready(check, dpdk)
        kind = f"dataplane ({director.dataplane}, else {'xdp' if director.dataplane == 'dpdk' else 'dpdk'})"
    log = EventLog(director.name)
    log("readiness", check=kind, interface=director.interface)
    prefixes, skipped = session_prefixes(loaded.config, director)
    if skipped:
        log("not-announceable", prefixes=[str(p) for p in skipped],
            reason="no BGP session of their IP version: IPv6 prefixes need an IPv6 peer and "
                   "the director's address6")
    neighbors: dict[int, list[str]] = {}
    peers: dict[str, tuple[str, bool]] = {}
    for session in director_sessions(loaded, director):
        neighbors.setdefault(session.peer.address.version, []).append(str(session.peer.address))
        peers[str(session.peer.address)] = (session.peer.name, session.password is not None)
    bfd = None
    conf = render_bfd_conf(loaded, director) if args.bfd == "config" else None
    if conf is not None:
        bfd = BfdDaemon(conf, directory, log)
        log("bfd", peers=[n.peer for n in bfd_neighbors(loaded, director)], conf=str(bfd.conf))
    stop = threading.Event()
    stop_on_signals(stop)
    feed = Feed(
        director=director.name,
        prefixes=prefixes,
        ready=guarded(check),
        pipe=ExaBgpPipe(sys.stdout, sys.stdin),
        drain=DrainState(directory),
        status=FeedStatus(directory),
        log=log,
        neighbors=neighbors,
        settings=FeedSettings(interval=args.interval, rise=args.rise, session_warn=args.session_warn),
        bfd=bfd,
        peers=peers,
    )
    return feed.run(stop)


def run_drain(args: argparse.Namespace) -> int:
    directory = state_dir(args.state_dir)
    token = DrainState(directory).drain(args.reason)
    if args.wait is None:
        print(f"drained (flag {DrainState(directory).path}); the feed withdraws within a second")
        return 0
    started = time.monotonic()
    confirmed = FeedStatus(directory).wait(withdrawal_confirmed(token), args.wait, poll=WAIT_POLL)
    if confirmed is None:
        raise GlbError(f"drain flag set, but no feed confirmed the withdrawal within {args.wait:g}s "
                       f"(is ExaBGP running? see {FeedStatus(directory).path})")
    print(f"drained: withdrawal confirmed by feed pid {confirmed.get('pid')} "
          f"after {time.monotonic() - started:.2f}s")
    return 0


def run_undrain(args: argparse.Namespace) -> int:
    directory = state_dir(args.state_dir)
    was = DrainState(directory).undrain()
    if args.wait is not None:
        seen = FeedStatus(directory).wait(undrain_seen, args.wait, poll=WAIT_POLL)
        if seen is None:
            raise GlbError(f"drain flag cleared, but no feed confirmed it within {args.wait:g}s")
        print(f"undrained: feed state {seen.get('state')!r}, announcing {len(seen.get('announced', []))}")
        return 0
    print("undrained" if was else "was not drained")
    return 0


def run_router(args: argparse.Namespace) -> int:
    from glb_agent.bgp.router import render_bird_conf, render_frr_conf

    loaded = load_config(args.config)
    if args.max_paths < 1:
        raise InputError("--max-paths must be at least 1")
    if args.format == "frr":
        text = render_frr_conf(loaded, args.peer, max_paths=args.max_paths, router_id=args.router_id)
    else:
        text = render_bird_conf(loaded, args.peer, log=args.log, max_paths=args.max_paths,
                                router_id=args.router_id)
    print(text, end="")
    return 0


def run_status(args: argparse.Namespace) -> int:
    directory = state_dir(args.state_dir)
    current = FeedStatus(directory).read()
    drained = DrainState(directory).current()
    live = bfd_sessions(directory)
    out = {"drained": drained is not None, "drain": drained, "feed": current,
           "feed_running": bool(current) and pid_alive(current.get("pid")),
           # Read now from the BFD speaker's control socket (null: not running).
           "bfd_sessions": None if live is None else [vars(x) | {"up": x.up} for x in live]}
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0
