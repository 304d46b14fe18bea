"""``glb-agent run | apply | status``: the director agent daemon and its operator commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

from glb_agent import logs
from glb_agent.agent.director import (
    DEFAULT_HEALTH_FILE,
    LIVE_TABLES_FILE,
    AgentOptions,
    DirectorAgent,
    read_status,
    running_pid,
    state_dir,
)
from glb_agent.bgp.bfd import sessions as bfd_sessions
from glb_agent.commands import (
    add_config_argument,
    add_name_argument,
    add_pin_dir_argument,
    add_state_dir_argument,
    add_xdp_mode_argument,
)
from glb_agent.config import load_config
from glb_agent.errors import GlbError
from glb_agent.table import upstream_json


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run the director agent (data plane, health checks, live tables)",
        description="Long-running director agent: attach or adopt the XDP director, probe "
        "backends, rebuild and swap tables on health changes and on SIGHUP. systemd runs this.")
    add_config_argument(run)
    add_name_argument(run, "director")
    add_pin_dir_argument(run, "director")
    add_xdp_mode_argument(run)
    run.add_argument("--health-file", type=Path, default=DEFAULT_HEALTH_FILE)
    run.add_argument("--metrics-port", type=int, default=9472, help="0 disables the exporter")
    run.add_argument("--metrics-address", default="127.0.0.1")
    _state_dir(run)
    run.set_defaults(func=_run)

    apply = sub.add_parser(
        "apply", help="validate glb.yml, show the table diff, and make it live",
        description="Validate the YAML and print how the tables change; unless --dry-run, tell the "
        "running agent to reload (SIGHUP) and wait until the new tables are live. A bad YAML "
        "changes nothing (exit 2); an edit that puts rows at risk is refused (exit 1) unless "
        "--force, by --dry-run too.")
    add_config_argument(apply)
    apply.add_argument("--dry-run", action="store_true",
                       help="only print the diff; exit 1 if apply would refuse the edit")
    apply.add_argument("--force", action="store_true",
                       help="apply even if the edit puts rows at risk (a proxy holding connections "
                            "leaves their row: those connections may break)")
    apply.add_argument("--timeout", type=float, default=30.0)
    _state_dir(apply)
    apply.add_argument("--json", action="store_true")
    apply.set_defaults(func=_apply)

    status = sub.add_parser("status", help="services, backends, health, BGP state and counters",
                            description="What the director agent on this host is doing.")
    _state_dir(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)


def _state_dir(p: argparse.ArgumentParser) -> None:
    add_state_dir_argument(p, "director", "the agent's status and pid files")


def _run(args: argparse.Namespace) -> int:
    logs.setup()
    opts = AgentOptions(config=Path(args.config), name=args.name, pin_dir=args.pin_dir,
                        xdp_mode=args.xdp_mode, health_file=args.health_file,
                        metrics_address=args.metrics_address,
                        metrics_port=args.metrics_port or None,
                        state_dir=args.state_dir or state_dir())
    agent = DirectorAgent(opts)
    return asyncio.run(agent.run())


def _diff_against_live(loaded, directory: Path) -> dict:
    """Rows that change if ``loaded`` goes live, against the tables the agent serves now
    (with the agent's current health view, so only the edit's own effect shows)."""
    import dataclasses

    from glb_agent.config.tables import table_specs
    from glb_agent.table.diff import diff_tables, render_text, to_json
    from glb_agent.table.rendezvous import build_all

    live_file = directory / LIVE_TABLES_FILE
    old_specs = upstream_json.load(live_file) if live_file.exists() else []
    # Upstream JSON has no row semantics: the status file says how the live rows were built.
    live = {s["service"]: s for s in (read_status(directory) or {}).get("services", [])}
    old_specs = [dataclasses.replace(s, semantics=live[s.name].get("semantics", "upstream"),
                                     candidates=live[s.name].get("candidates", 2))
                 if s.name in live else s for s in old_specs]
    health = {(s.name, b.ip): b.healthy for s in old_specs for b in s.backends}
    new_specs = table_specs(loaded, health)
    diff = diff_tables(old_specs, build_all(old_specs), new_specs, build_all(new_specs))
    return {"text": render_text(diff), "json": to_json(diff), "rows_at_risk": diff.rows_at_risk}


def _apply(args: argparse.Namespace) -> int:
    directory = args.state_dir or state_dir()
    loaded = load_config(args.config)  # exit 2 on a bad file, before anything else
    try:
        diff = _diff_against_live(loaded, directory)
    except (GlbError, OSError, TypeError, ValueError) as exc:
        diff = {"text": f"(no diff: {exc})", "json": None}
    if not args.json:
        print(diff["text"])
    refusal = None
    if diff.get("rows_at_risk") and not args.force:
        refusal = (f"refused: the edit puts {diff['rows_at_risk']} rows at risk (see the diff); "
                   "split it into steps (drain first, then remove) or pass --force")
    # A dry run answers "would apply go through?" (exit 1 and the same message if not), so a
    # rollout (playbooks/apply-config.yml) can ask each director before changing anything.
    if args.dry_run and args.json:
        print(json.dumps({"dry_run": True, "refused": refusal, "diff": diff["json"]}, indent=2))
        return 1 if refusal else 0
    if refusal:
        raise GlbError(refusal)
    if args.dry_run:
        return 0
    pid = running_pid(directory)
    if pid is None:
        raise GlbError(f"no running director agent (no live pid in {directory}); start glb-director.service")
    before = (read_status(directory) or {}).get("swapped_at", 0)
    t0, sent_at = time.monotonic(), time.time()
    os.kill(pid, signal.SIGHUP)
    while time.monotonic() - t0 < args.timeout:
        status = read_status(directory) or {}
        switch = status.get("switch") or {}
        if switch.get("started_at", 0) >= sent_at:
            # This reload changed the data plane: done only when the agent has re-announced.
            if switch.get("state") == "failed":
                raise GlbError(f"data-plane switch {switch.get('from')} -> {switch.get('to')} refused, "
                               f"the {switch.get('from')} data plane keeps forwarding the old glb.yml: "
                               f"{switch.get('error')}")
            if switch.get("state") != "done":
                time.sleep(0.05)
                continue
        if status.get("swapped_at", 0) > before:
            took = time.monotonic() - t0
            if args.json:
                print(json.dumps({"applied": True, "generation": status["generation"], "seconds": took,
                                  "switch": switch or None, "diff": diff["json"]}, indent=2))
            else:
                print(f"applied: generation {status['generation']} live after {took:.2f}s")
                if switch.get("started_at", 0) >= sent_at:
                    print(_switch_text(switch))
            return 0
        time.sleep(0.05)
    raise GlbError(f"the agent did not swap new tables within {args.timeout}s (see its log: a rejected "
                   "YAML keeps the old tables)")


def _switch_text(sw: dict) -> str:
    """One line for a finished data-plane switch (the agent's record in director-status.json);
    seconds from the start of the switch."""
    def t(key: str) -> str:
        return f"{sw.get(key, 0):.2f}s"

    note = f" ({sw['note']})" if sw.get("note") else ""
    return (f"data plane {sw.get('from')} -> {sw.get('to')}: VIPs withdrawn at {t('withdrawn_s')}, "
            f"last VIP packet at {t('traffic_stopped_s')}, old stopped at {t('idle_s')}, {sw.get('to')} "
            f"ready after {t('dark_s')} more, announced again at {t('seconds')}{note}")


def _status(args: argparse.Namespace) -> int:
    directory = args.state_dir or state_dir()
    status = read_status(directory)
    bgp = None
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        bgp = json.loads((directory / "bgp-feed.json").read_text())
    pid = running_pid(directory)
    live = bfd_sessions(directory)  # now, from the BFD speaker's control socket; None: not running
    doc = {"agent_pid": pid, "director": status, "bgp": bgp,
           "bfd": None if live is None else [vars(x) | {"up": x.up} for x in live]}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0 if pid and status else 1
    if status is None:
        print(f"no director agent status in {directory}")
        return 1
    age = time.time() - status["swapped_at"]
    print(f"director {status['director']}  agent pid {pid or 'NOT RUNNING'}  generation "
          f"{status['generation']}  tables swapped {age:.0f}s ago (build {status['build_seconds']}s)")
    if bgp is not None:
        print(f"bgp: announced {', '.join(bgp.get('announced', [])) or 'nothing'}  "
              f"ready={bgp.get('ready')}  drained={bgp.get('drained')}")
        for peer, sess in sorted((bgp.get("sessions") or {}).items()):
            print(f"  bgp session {peer} ({sess.get('address')}): {sess.get('state')}")
    if live is not None:
        for x in live:
            print(f"  bfd {x.address} on {x.interface}: {x.state} since {x.since} "
                  f"(interval {x.interval}s, detect {x.timeout}s)")
    elif bgp is not None and (bgp.get("bfd") or {}).get("running") is False:
        print("  bfd: speaker not running (data plane not ready, or BFD off)")
    for svc in status["services"]:
        print(f"\nservice {svc['service']}")
        risk = svc.get("rows_at_risk", 0)
        rows = f"{svc.get('semantics', 'upstream')} rows" + (
            f", K={svc['candidates']}" if svc.get("semantics") == "candidates" else "")
        print(f"  {rows}; rows at risk in the last config change: {risk} ({risk / 65536:.2%})")
        print(f"  {'backend':<18}{'state':<10}{'health':<10}{'first':>9}{'second':>11}")
        for b in svc["backends"]:
            print(f"  {b['address']:<18}{b['state']:<10}{'up' if b['healthy'] else 'DOWN':<10}"
                  f"{b['primary_share']:>8.1%}{b['secondary_share']:>11.1%}")
    return 0 if pid else 1
