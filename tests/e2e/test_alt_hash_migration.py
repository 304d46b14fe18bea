"""Changing which header fields the director hashes without breaking connections:
``fleet.alt_hash_fields`` keeps the old fields while the new ones take effect, so the hop
list carries the candidates under both and connections hashed the old way survive through
second chance. Control: the same switch without alt_hash_fields breaks connections.

Long-lived connections (glb_agent.lab.conns) from the lab's client through both directors.
Rows are two wide
(``table_candidates: 2``, the hop list of upstream's migration vector: 1 + 2 hops): with the
lab's three proxies, K=3 rows would hold every proxy and the control could not break.
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


def migrate(tmp: Path, with_alt: bool) -> tuple[dict, list[dict]]:
    base = k.set_fleet_keys(k.fleet_text(), table_candidates="2")
    cfg = tmp / f"alt-{with_alt}.yml"
    cfg.write_text(base)
    lab.up(cfg)
    keepers = k.Keepers(tmp / f"alt-{with_alt}", [str(a) for a in plan(load_config(cfg)).client_addresses])
    keepers.tmp.mkdir()
    keepers.open(N_CONNS, "hashed by [src_addr]")
    alt = "[src_addr]" if with_alt else None
    cfg.write_text(k.set_hash_fields(base, "[src_addr, src_port]", alt))
    k.apply(cfg, DIRECTORS, "--force")  # returns once each agent swapped (program and tables)
    keepers.open(max(1, N_CONNS // 4), "hashed by [src_addr, src_port]")
    totals = keepers.totals()
    broken = keepers.stop()
    lab.down(quiet=True)
    return totals, broken


def test_alt_hash_fields_migration_breaks_no_connection(lab_ok, tmp_path: Path, capsys) -> None:
    totals, broken = migrate(tmp_path, with_alt=True)
    ctl_totals, ctl_broken = migrate(tmp_path, with_alt=False)
    with capsys.disabled():
        print(f"\n[src_addr] -> [src_addr, src_port]: with alt_hash_fields {totals}; without {ctl_totals}")
    assert not broken, f"{len(broken)} connections broke during the migration: {broken[:3]}"
    assert ctl_broken, "switching hash_fields without alt_hash_fields broke nothing: no control"
