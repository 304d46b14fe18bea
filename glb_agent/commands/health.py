"""``glb-agent health check``: probe every backend of every service and report.

Three ways to run, all from the same probes the director's checker uses:

* ``--once``: one probe per backend; a backend is healthy if that probe passed.
* default: the rise/fall state machine from "unknown": every backend is probed until it
  has had ``rise`` probes (a backend starts unhealthy, so it must pass ``rise`` in a row),
  the verdict a freshly started checker would reach.
* ``--watch``: keep checking and print every verdict change until interrupted.

Exit 0 when every backend is healthy, 1 otherwise (so scripts and Ansible can gate on it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time

from glb_agent import logs
from glb_agent.commands import add_config_argument, add_name_argument
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.errors import InputError
from glb_agent.health import Checker, HealthChange, ProbeResult, Target, check_once
from glb_agent.health.gue import GueProber, can_probe
from glb_agent.health.target import Key, targets_from_config

_log = logs.get("health.cli")


def register(sub: argparse._SubParsersAction) -> None:
    health = sub.add_parser("health", help="backend health checks",
                            description="Run the directors' backend health checks by hand.")
    hsub = health.add_subparsers(dest="health_command", metavar="SUBCOMMAND")
    hsub.required = True
    check = hsub.add_parser(
        "check", help="probe every backend of every service; exit 1 if any is unhealthy",
        description="Probe every backend of every service (HTTP, TCP and GUE checks as configured). "
                    "Exit 0 if all are healthy, 1 if any is not, 2 on bad input.")
    add_config_argument(check)
    mode = check.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one probe per backend, no rise/fall")
    mode.add_argument("--watch", action="store_true", help="keep checking; print each change")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    add_name_argument(check, "director", old=("--director",),
                      default="the local one, else the first; GUE probes come from its address")
    check.add_argument("--service", action="append", default=None,
                       help="only this service (repeatable)")
    check.set_defaults(func=run)


def _targets(args: argparse.Namespace) -> tuple[str, list[Target]]:
    loaded = load_config(args.config)
    # Lenient: from a workstation, probe as the first director (GUE then fails visibly).
    director = this_director(loaded, args.name, strict=False)
    targets = targets_from_config(loaded, director)
    if args.service:
        known = {t.service for t in targets}
        unknown = sorted(set(args.service) - known)
        if unknown:
            raise InputError(f"no service named {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        targets = [t for t in targets if t.service in args.service]
    return director.name, targets


def _open_gue(targets: list[Target]) -> GueProber | None:
    if not any(t.check.gue for t in targets):
        return None
    reason = can_probe()
    if reason:
        logs.event(_log, "gue_probes_unavailable", logging.WARNING, reason=reason)
        return None
    prober = GueProber()
    prober.open()
    return prober


async def _settle(targets: list[Target], gue: GueProber | None) -> dict[Key, tuple[ProbeResult, ...]]:
    """Run the state machine from "unhealthy" until each backend had ``rise`` probes."""
    deadline = max(t.check.rise * t.check.interval + t.check.timeout + t.check.interval for t in targets)
    async with Checker(targets, gue=gue, initial_healthy=False) as checker:
        async with asyncio.timeout(deadline + 2.0):
            while any(checker.stats.per_backend.get(t.key, 0) < t.check.rise for t in targets):
                await asyncio.sleep(0.02)
        view, results = checker.view(), dict(checker.stats.last_results)
    return _verdicts(view, results)


def _verdicts(view: dict[Key, bool], results: dict[Key, tuple[ProbeResult, ...]]
              ) -> dict[Key, tuple[ProbeResult, ...]]:
    out = {}
    for key, healthy in view.items():
        res = results.get(key, ())
        if not healthy and all(r.ok for r in res):
            # recovering: the last probe passed, but fewer than `rise` in a row did
            res = (*res, ProbeResult("rise", False, "fewer than rise passing probes in a row", 0.0))
        out[key] = res
    return out


def _print_table(director: str, targets: list[Target], results: dict[Key, tuple[ProbeResult, ...]],
                 as_json: bool) -> bool:
    healthy = {t.key: all(r.ok for r in results[t.key]) for t in targets}
    ok = all(healthy.values())
    if as_json:
        print(json.dumps({
            "ok": ok, "director": director,
            "backends": [
                {"service": t.service, "backend": str(t.address), "healthy": healthy[t.key],
                 "checks": [{"kind": r.kind, "ok": r.ok, "detail": r.detail, "ms": round(r.seconds * 1000, 2)}
                            for r in results[t.key]]}
                for t in targets
            ],
        }, indent=2))
        return ok
    width = max(len(t.service) for t in targets)
    for t in targets:
        res = results[t.key]
        detail = "; ".join(f"{r.kind} ok ({r.seconds * 1000:.1f} ms)" if r.ok else r.detail for r in res)
        state = "healthy" if healthy[t.key] else "UNHEALTHY"
        print(f"{t.service:<{width}}  {t.address!s:<15}  {state:<9}  {detail or 'no checks configured'}")
    bad = sum(not v for v in healthy.values())
    print(f"{len(targets) - bad}/{len(targets)} backends healthy (GUE probes from director {director})")
    return ok


async def _watch(targets: list[Target], gue: GueProber | None, as_json: bool) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_change(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
        for c in changes:
            if as_json:
                print(json.dumps({"ts": time.time(), "service": c.service, "backend": str(c.address),
                                  "healthy": c.healthy, "damped": c.damped, "detail": c.detail}), flush=True)
            else:
                state = "up" if c.healthy else "DOWN"
                print(f"{time.strftime('%H:%M:%S')} {c.service} {c.address} {state}"
                      f"{' (damped)' if c.damped else ''}: {c.detail}", flush=True)

    async with Checker(targets, on_change=on_change, gue=gue) as checker:
        await stop.wait()
        return all(checker.view().values())


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger("glb_agent").handlers:
        logs.setup(logging.WARNING)
    director, targets = _targets(args)
    if not targets:
        print("no backends to check", file=sys.stderr)
        return 0

    async def main() -> bool:
        gue = _open_gue(targets)
        try:
            if args.watch:
                return await _watch(targets, gue, args.json)
            results = await (check_once(targets, gue) if args.once else _settle(targets, gue))
            return _print_table(director, targets, results, args.json)
        finally:
            if gue is not None:
                with contextlib.suppress(Exception):
                    gue.close()

    return 0 if asyncio.run(main()) else 1
