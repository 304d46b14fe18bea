"""Long-lived connections through several proxies changing at once: two draining together,
one draining while another fails its health check (a false positive: its service still
runs), a proxy added as filling while another drains, then all back to active. With
candidate rows (K=4, capped at the backends) none breaks and no apply is refused; plain
``table_semantics: upstream`` on the same steps is the control, and breaks some.

A batch of connections opens after each step and every batch is kept to the end, so each
step's table places connections that later steps must still reach. The fleet hashes
[src_addr, src_port], so every connection lands on its own row. ``GLB_E2E_CONNS`` sets the
total (CI: 200; ``make e2e-rows``: 1,000).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glb_agent.config import load_config
from glb_agent.lab import run as lab
from glb_agent.lab.topology import plan
from tests.e2e import krows_support as k

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

N_CONNS = int(os.environ.get("GLB_E2E_CONNS", "200"))
DIRECTORS = ["d1", "d2"]
# (step, backend states, p2's health check failing?)
STEPS: list[tuple[str, dict[str, str], bool]] = [
    ("1 p1 + p2 drain at once", {"p1": "draining", "p2": "draining"}, False),
    ("2 all active", {}, False),
    ("3 p1 drains while p2 fails its check", {"p1": "draining"}, True),
    ("4 all active, p2 healthy", {}, False),
    ("5 p1 drains", {"p1": "draining"}, False),
    ("6 p4 added filling while p1 drains", {"p1": "draining", "p4": "filling"}, False),
    ("7 all back to active", {"p4": "active"}, False),
]


def fleet_for(base: str, semantics: str, states: dict[str, str]) -> str:
    text = k.set_hash_fields(k.with_p4(base), "[src_addr, src_port]")
    if semantics == "upstream":
        text = k.set_fleet_keys(text, table_semantics="upstream")
    if "p4" in states:
        text = k.add_p4(text, states["p4"])
    return k.set_states(text, **{p: s for p, s in states.items() if p != "p4"})


def run_steps(tmp: Path, semantics: str) -> tuple[list[tuple[str, int, int, str]], list[dict]]:
    base = k.fleet_text()
    cfg = tmp / f"{semantics}.yml"
    cfg.write_text(fleet_for(base, semantics, {}))
    lab.up(cfg)
    sources = [str(a) for a in plan(load_config(cfg)).client_addresses]
    keepers = k.Keepers(tmp / semantics, sources)
    keepers.tmp.mkdir()
    batch = max(1, N_CONNS // (len(STEPS) + 1))
    keepers.open(N_CONNS - batch * len(STEPS), "0 start")
    rows: list[tuple[str, int, int, str]] = []
    down = lab.RUN_DIR / "p2" / "down"
    for step, states, p2_failing in STEPS:
        if p2_failing:
            down.touch()
            k.wait_health(DIRECTORS, "p2", healthy=False)
        elif down.exists():
            down.unlink()
            k.wait_health(DIRECTORS, "p2", healthy=True)
        cfg.write_text(fleet_for(base, semantics, states))
        if "p4" in states:
            k.reapply_proxy(cfg, "p4")  # its VIPs on loopback before directors send it flows
        force = ("--force",) if semantics == "upstream" else ()
        out = k.apply(cfg, DIRECTORS, *force)
        # as d1's apply printed it (d2 computes the same tables)
        risk = next(int(line.split("rows at risk: ")[1].split()[0]) for line in out.splitlines()
                    if "rows at risk: " in line)
        for p in ("p1", "p2"):
            k.wait_state(DIRECTORS, p, states.get(p, "active"))
        keepers.open(batch, step)
        t = keepers.totals()
        rows.append((step, t["alive"], t["broken"], f"{risk}"))
    broken = keepers.stop()
    lab.down(quiet=True)
    return rows, broken


def test_connections_survive_several_proxies_changing_at_once(lab_ok, tmp_path: Path, capsys) -> None:
    rows, broken = run_steps(tmp_path, "candidates")
    ctl_rows, ctl_broken = run_steps(tmp_path, "upstream")
    with capsys.disabled():
        for name, table in (("candidates K=4", rows), ("upstream (control)", ctl_rows)):
            print(f"\n{name}: {'step':<42}{'alive':>7}{'broken':>8}{'rows at risk':>14}")
            for step, alive, nbroken, risk in table:
                print(f"  {'':<{len(name)}}{step:<42}{alive:>7}{nbroken:>8}{risk:>14}")
    assert not broken, f"{len(broken)} of {N_CONNS} connections broke with candidate rows: {broken[:3]}"
    assert ctl_broken, "upstream rows broke nothing: the control proves nothing"
