"""``glb-agent proxy apply|stop|status``: make this host a GLB proxy (or stop being one).

``apply`` is idempotent (a second run reports no changes) and leaves the XDP program
attached when it exits; ``stop`` undoes only what ``apply`` did; ``status`` exits 1 when
the proxy program is not running on the interface, so it can serve as a health check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from glb_agent.commands import add_host_actions, add_state_dir_argument, add_xdp_mode_argument
from glb_agent.config import load_config
from glb_agent.proxy.config import proxy_settings
from glb_agent.proxy.host import DEFAULT_STATE_DIR, ProxyHost


def register(sub: argparse._SubParsersAction) -> None:
    def extra(_action: str, a: argparse.ArgumentParser) -> None:
        add_state_dir_argument(a, "proxy", "where apply records its changes")
        add_xdp_mode_argument(a)  # stop and status check the attachment mode too

    add_host_actions(
        sub, "proxy",
        help="set up / tear down / inspect this host's GUE decap (XDP) and VIPs",
        description="Run the proxy side of GLB on this host: eBPF GUE decapsulation with "
                    "second-chance forwarding, VIPs on loopback, ARP and rp_filter sysctls.",
        actions=(
            ("apply", _apply, "converge this host to the config (idempotent)", ()),
            ("stop", _stop, "detach the program and undo what apply changed", ()),
            ("status", _status, "program, counters and host settings; exit 1 if not running", ()),
        ),
        extra=extra,
    )


def _host(args: argparse.Namespace) -> ProxyHost:
    settings = proxy_settings(load_config(args.config), args.name, pin_dir=args.pin_dir)
    settings = dataclasses.replace(settings, xdp_mode=args.xdp_mode)
    return ProxyHost(settings, state_dir=args.state_dir or DEFAULT_STATE_DIR)


def _print_changes(args: argparse.Namespace, host: ProxyHost, changes: list[str]) -> None:
    if args.json:
        print(json.dumps({"ok": True, "interface": host.settings.interface, "changes": changes}, indent=2))
        return
    for line in changes:
        print(line)
    if not changes:
        print(f"{host.settings.interface}: nothing to change")


def _apply(args: argparse.Namespace) -> int:
    host = _host(args)
    _print_changes(args, host, host.apply())
    return 0


def _stop(args: argparse.Namespace) -> int:
    host = _host(args)
    _print_changes(args, host, host.stop())
    return 0


def _status(args: argparse.Namespace) -> int:
    host = _host(args)
    info = host.status()
    running = bool(info.get("running"))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        att = info.get("attached")
        where = f"{att['mode']} prog {att['prog_id']}" if isinstance(att, dict) else "nothing attached"
        print(f"{host.settings.interface}: {'running' if running else 'NOT running'} ({where})")
        bad = [k for k, ok in dict(info.get("sysctls_ok", {})).items() if not ok]
        if bad:
            print("sysctls not as apply sets them: " + ", ".join(bad))
        for name, value in dict(info.get("counters", {})).items():
            if value:
                print(f"  {name:<24} {value}")
    return 0 if running else 1
