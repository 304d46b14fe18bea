"""Rows at risk: which edits can break connections, in the diff, ``table diff`` and ``apply``.

A row is at risk when a proxy holding its connections (the old destination, or a draining
proxy of the old row) is not in the new row. The same edits are checked with upstream's
two columns, where a drain plus a fill in one row already overflows, and with K candidates.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glb_agent.cli import main
from glb_agent.table.diff import diff_table, render_text, to_json
from glb_agent.table.diff import diff_tables as diff_all
from glb_agent.table.rendezvous import build_rows
from glb_agent.table.spec import TABLE_ROWS, Backend, TableSpec
from tests.support.fleet import live_state, proxy_address, write_fleet

from .factories import spec, v4


def sem(t: TableSpec, semantics: str, k: int = 4) -> TableSpec:
    return dataclasses.replace(t, semantics=semantics, candidates=2 if semantics == "upstream" else k)


def risk(old: TableSpec, new: TableSpec) -> int:
    return diff_table(old, build_rows(old), new, build_rows(new)).rows_at_risk


def states(t: TableSpec, **by_index: str) -> TableSpec:
    backends = list(t.backends)
    for key, state in by_index.items():
        i = int(key[1:])
        backends[i] = Backend(backends[i].ip, state)
    return dataclasses.replace(t, backends=tuple(backends))


@pytest.mark.parametrize("semantics", ["upstream", "candidates"])
def test_identity_drain_and_add_are_safe(semantics: str) -> None:
    t = sem(spec(8), semantics)
    assert risk(t, t) == 0
    assert risk(t, states(t, b0="draining")) == 0
    assert risk(t, dataclasses.replace(t, backends=(*t.backends, Backend(v4(50), "filling")))) == 0
    drained = states(t, b0="draining")
    assert risk(drained, dataclasses.replace(t, backends=t.backends[1:])) == 0  # the end of a drain
    assert risk(drained, states(t, b0="inactive")) == 0


@pytest.mark.parametrize("semantics", ["upstream", "candidates"])
def test_removing_an_active_backend_puts_its_rows_at_risk(semantics: str) -> None:
    t = sem(spec(8), semantics)
    gone = dataclasses.replace(t, backends=t.backends[1:])
    first = int((build_rows(t)[:, 0] == 0).sum())
    assert risk(t, gone) == first
    assert risk(t, states(t, b0="inactive")) == first


def test_fill_while_another_drains_overflows_two_columns_but_not_k() -> None:
    # p0 is draining (its connections finish on rows' second entry) and a new proxy is added:
    # where it ranks first, upstream's row keeps (new, p0) and drops the proxy that took p0's
    # new flows, whose connections then break. K=4 rows keep all three.
    for semantics, at_risk in (("upstream", True), ("candidates", False)):
        t = states(sem(spec(6), semantics), b0="draining")
        grown = dataclasses.replace(t, backends=(*t.backends, Backend(v4(60), "filling")))
        n = risk(t, grown)
        assert (n > 0) == at_risk, (semantics, n)


def test_double_drain_then_removal_only_k_rows_stay_reachable() -> None:
    # Two proxies drain at once, then a third fails: the K row still carries every holder.
    t = sem(spec(6), "candidates")
    both = states(t, b0="draining", b1="draining")
    assert risk(t, both) == 0
    failed = dataclasses.replace(both, backends=tuple(
        dataclasses.replace(b, healthy=False) if i == 2 else b for i, b in enumerate(both.backends)))
    assert risk(both, failed) == 0


def test_diff_prints_rows_at_risk_per_table_with_the_share() -> None:
    t = sem(spec(4), "candidates")
    gone = dataclasses.replace(t, backends=t.backends[1:])
    d = diff_all([t], [build_rows(t)], [gone], [build_rows(gone)])
    n = d.rows_at_risk
    assert n > 0
    assert f"rows at risk: {n} of {TABLE_ROWS} ({100 * n / TABLE_ROWS:.2f}%)" in render_text(d)
    doc = to_json(d)
    assert doc["rows_at_risk"] == n and doc["tables"][0]["rows_at_risk"] == n
    assert doc["tables"][0]["rows_at_risk_share"] == round(n / TABLE_ROWS, 6)
    same = diff_all([t], [build_rows(t)], [t], [build_rows(t)])
    assert "rows at risk: 0 of 65536 (0.00%)" in render_text(same) and same.unchanged


def test_semantics_change_is_reported() -> None:
    t = spec(4)
    d = diff_table(t, build_rows(t), sem(t, "candidates"), build_rows(sem(t, "candidates")))
    assert not d.unchanged and d.rows_at_risk == 0
    assert "row semantics: upstream -> candidates K=4" in render_text(diff_all(
        [t], [build_rows(t)], [sem(t, "candidates")], [build_rows(sem(t, "candidates"))]))


# --- through the CLI ----------------------------------------------------------------------

P1, P2, P3 = (proxy_address(i) for i in (1, 2, 3))
ALL = {P1: "active", P2: "active", P3: "active"}


def test_table_diff_shows_rows_at_risk(tmp_path: Path, capsys) -> None:
    old = write_fleet(tmp_path / "old.yml", ALL)
    new = write_fleet(tmp_path / "new.yml", {P1: "active", P2: "active"}, proxies=3)
    assert main(["table", "diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "table 0 'web'" in out and "rows at risk: " in out and "rows at risk: 0 " not in out
    assert main(["table", "diff", str(old), str(new), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0.25 < doc["tables"][0]["rows_at_risk_share"] < 0.42  # p3's third of the rows


def test_apply_refuses_rows_at_risk_unless_forced(tmp_path: Path, capsys) -> None:
    state = tmp_path / "state"
    cfg = write_fleet(tmp_path / "glb.yml", ALL)
    live_state(state, cfg)
    # Safe: two proxies start draining at once (no one-at-a-time rule any more).
    write_fleet(cfg, {P1: "active", P2: "draining", P3: "draining"})
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run"]) == 0
    assert "rows at risk: 0 of 65536" in capsys.readouterr().out
    # Risky: p3 removed while active.
    write_fleet(cfg, {P1: "active", P2: "active"}, proxies=3)
    # The dry run says apply would refuse it: the same message and exit status, nothing signalled.
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] and doc["diff"]["rows_at_risk"] > 0
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run"]) == 1
    dry_err = capsys.readouterr().err
    assert "refused" in dry_err and "rows at risk" in dry_err and "--force" in dry_err
    assert f"glb-agent: error: {doc['refused']}" in dry_err
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state)]) == 1
    assert capsys.readouterr().err == dry_err
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run", "--force"]) == 0
    assert "rows at risk: " in capsys.readouterr().out
    # --force passes the check and goes on to signal the agent (none runs here).
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--force"]) == 1
    err = capsys.readouterr().err
    assert "refused" not in err and "no running director agent" in err


def test_apply_diffs_against_the_live_semantics(tmp_path: Path, capsys) -> None:
    # The agent runs upstream rows; the edit switches to candidates rows and drains p1:
    # the diff must build the old side the upstream way, or it would compare K rows with K rows.
    state = tmp_path / "state"
    live_state(state, write_fleet(tmp_path / "old.yml", ALL, fleet={"table_semantics": "upstream"}))
    cfg = write_fleet(tmp_path / "glb.yml", ALL)
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "row semantics: upstream -> candidates K=4" in out
    assert "no diff" not in out  # the diff itself was computed
