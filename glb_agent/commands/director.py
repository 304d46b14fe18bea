"""``glb-agent director apply|stop|status``: run this host's XDP director.

The same verbs as ``glb-agent proxy``. ``apply`` (``start`` is its old spelling) compiles
and attaches the director (or adopts the one already running: a restart never detaches it),
loads every service's table atomically and exits; the pinned XDP link keeps forwarding
afterwards. Running it again after a config change swaps the tables in one step. ``stop``
detaches and removes the pins. ``status`` exits 0 only when the program is attached and
tables are loaded — the same condition the BGP speaker uses before announcing VIPs.
With ``dataplane: dpdk`` the same verbs drive the DPDK director process instead (files and
stats under the director state directory's ``dpdk/``).
"""

from __future__ import annotations

import argparse
import json

from glb_agent.commands import add_host_actions, add_xdp_mode_argument
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.dataplane.director import XdpDirector, director_ready
from glb_agent.dataplane.director_config import director_settings, director_tables
from glb_agent.dataplane.dpdk import DpdkDirector, dpdk_options
from glb_agent.errors import GlbError, InputError
from glb_agent.util import paths


def register(sub: argparse._SubParsersAction) -> None:
    def extra(action: str, a: argparse.ArgumentParser) -> None:
        if action == "apply":
            add_xdp_mode_argument(a)

    add_host_actions(
        sub, "director",
        help="apply / stop / inspect this host's XDP director",
        description="Run the director side of GLB: XDP GUE encapsulation of VIP traffic towards "
                    "the proxies, with atomic table swaps and adoption across agent restarts.",
        actions=(
            ("apply", _apply, "attach (or adopt) the director and load every table (idempotent)",
             ("start",)),
            ("stop", _stop, "detach the director and remove its pins", ()),
            ("status", _status, "attachment, tables and counters; exit 1 if not forwarding", ()),
            ("exec", _exec, "dataplane: dpdk only: become the DPDK director process "
             "(glb-director-dpdk.service runs this)", ()),
        ),
        extra=extra,
    )


def _emit(args: argparse.Namespace, info: dict, text: list[str]) -> None:
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for line in text:
            print(line)


def _dpdk(loaded: LoadedConfig, args: argparse.Namespace, resolve: bool) -> DpdkDirector | None:
    """This host's DPDK director when its config says ``dataplane: dpdk``."""
    me = this_director(loaded, args.name, strict=True)
    if me.dataplane != "dpdk":
        return None
    settings = director_settings(loaded, args.name, resolve=resolve)
    return DpdkDirector(settings, dpdk_options(me, paths.director_state_dir()))


def _apply(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    dpdk = _dpdk(loaded, args, resolve=True)
    if dpdk is not None:
        tables = director_tables(loaded)
        outcome = dpdk.start()
        gen = dpdk.update_tables(tables)
        ready, why = dpdk.ready()
        _emit(args, {"ok": ready, "dataplane": "dpdk", "outcome": outcome, "generation": gen,
                     "services": [s.name for s, _ in tables], "ready": why},
              [f"dpdk: {outcome}; {len(tables)} table(s) live in generation {gen}", why])
        return 0 if ready else 1
    settings = director_settings(loaded, args.name, pin_dir=args.pin_dir, xdp_mode=args.xdp_mode)
    tables = director_tables(loaded)  # built (and validated) before anything is touched
    director = XdpDirector(settings)
    try:
        outcome = director.start()
        gen = director.update_tables(tables)
    finally:
        director.close()
    ready, why = director_ready(settings.interface, settings.pin_dir)
    _emit(args, {"ok": ready, "interface": settings.interface, "outcome": outcome, "generation": gen,
                 "services": [s.name for s, _ in tables], "ready": why},
          [f"{settings.interface}: {outcome}; {len(tables)} table(s) live in generation {gen}", why])
    return 0 if ready else 1


def _exec(args: argparse.Namespace) -> int:
    """The DPDK unit's ExecStart: exec the process with this host's settings (never returns)."""
    loaded = load_config(args.config)
    dpdk = _dpdk(loaded, args, resolve=True)
    if dpdk is None:
        raise InputError(f"director {this_director(loaded, args.name, strict=True).name!r} has "
                         "dataplane: xdp; `director exec` runs the DPDK director only")
    dpdk.exec_process(director_tables(loaded))
    return 1  # not reached: exec_process replaces this process


def _stop(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    dpdk = _dpdk(loaded, args, resolve=False)
    if dpdk is not None:
        existed = dpdk.stop()
        _emit(args, {"ok": True, "dataplane": "dpdk", "stopped": existed},
              [f"dpdk: {'director stopped' if existed else 'no director was running'}"])
        return 0
    settings = director_settings(loaded, args.name, pin_dir=args.pin_dir, resolve=False)
    existed = XdpDirector(settings).stop()
    _emit(args, {"ok": True, "interface": settings.interface, "stopped": existed},
          [f"{settings.interface}: {'director stopped' if existed else 'no director was running'}"])
    return 0


def _status(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    dpdk = _dpdk(loaded, args, resolve=False)
    if dpdk is not None:
        ready, why = dpdk.ready()
        st = dpdk.stats()
        info = {"ok": ready, "dataplane": "dpdk", "ready": ready, "reason": why,
                "generation": st.get("generation"), "counters": st.get("counters", {})}
        lines = [f"dpdk: {'forwarding' if ready else 'NOT forwarding'}: {why}"]
        for service, cells in info["counters"].items():
            lines += [f"  {service:<16} {name:<28} {value}" for name, value in cells.items() if value]
        _emit(args, info, lines)
        return 0 if ready else 1
    settings = director_settings(loaded, args.name, pin_dir=args.pin_dir, resolve=False)
    ready, why = director_ready(settings.interface, settings.pin_dir)
    info: dict = {"ok": ready, "interface": settings.interface, "ready": ready, "reason": why}
    lines = [f"{settings.interface}: {'forwarding' if ready else 'NOT forwarding'}: {why}"]
    director = XdpDirector(settings)
    try:
        meta = director.open_existing()
        counters = director.counters()
        info |= {"mode": meta.get("mode"), "services": sorted(meta.get("slots", {})), "counters": counters}
        for service, cells in counters.items():
            for name, value in cells.items():
                if value:
                    lines.append(f"  {service:<16} {name:<28} {value}")
    except (GlbError, OSError):
        pass  # nothing pinned: the reason above already says so
    finally:
        director.close()
    _emit(args, info, lines)
    return 0 if ready else 1
