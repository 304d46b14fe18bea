"""Rows at risk: which edits can break connections, in the diff, ``table diff`` and ``apply``.

A row is at risk when a proxy holding its connections (the old destination, or a draining
proxy of the old row) is not in the new row. The same edits are checked with upstream's
two columns, where a drain plus a fill in one row already overflows, and with K candidates.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from glb_agent.cli import main
from glb_agent.config import load_config
from glb_agent.table import upstream_json
from glb_agent.table.diff import diff_table, render_text, to_json
from glb_agent.table.diff import diff_tables as diff_all
from glb_agent.table.rendezvous import build_rows
from glb_agent.table.spec import TABLE_ROWS, Backend, TableSpec

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

YAML = """\
fleet:
  name: t
  secret: 0123456789abcdef-secret
bgp:
  local_asn: 65100
  peers: [{name: r1, address: 198.18.0.1, asn: 65000}]
directors:
  - {name: d1, address: 198.18.0.11, interface: eth0, gateway_mac: "02:00:00:00:00:01"}
proxies:
  - {name: p1, address: 198.18.0.21, interface: eth0}
  - {name: p2, address: 198.18.0.22, interface: eth0}
  - {name: p3, address: 198.18.0.23, interface: eth0}
services:
  - name: web
    vips: [203.0.113.10]
    ports: [80]
    backends:
BACKENDS"""


def write_yaml(path: Path, backends: str) -> Path:
    path.write_text(YAML.replace("BACKENDS", textwrap.indent(textwrap.dedent(backends), "      ")))
    return path


def live_state(directory: Path, config: Path) -> None:
    """What a running agent leaves in its state dir: the live tables and their semantics."""
    from glb_agent.agent.director import LIVE_TABLES_FILE, STATUS_FILE, table_status
    from glb_agent.dataplane.director_config import table_rows

    tables = table_rows(load_config(config))
    directory.mkdir(exist_ok=True)
    (directory / LIVE_TABLES_FILE).write_text(upstream_json.dumps([s for s, _ in tables]))
    (directory / STATUS_FILE).write_text(json.dumps({"services": table_status(tables, {})}))


def test_table_diff_shows_rows_at_risk(tmp_path: Path, capsys) -> None:
    old = write_yaml(tmp_path / "old.yml", "- address: 198.18.0.21\n- address: 198.18.0.22\n"
                                           "- address: 198.18.0.23\n")
    new = write_yaml(tmp_path / "new.yml", "- address: 198.18.0.21\n- address: 198.18.0.22\n")
    assert main(["table", "diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "table 0 'web'" in out and "rows at risk: " in out and "rows at risk: 0 " not in out
    assert main(["table", "diff", str(old), str(new), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0.25 < doc["tables"][0]["rows_at_risk_share"] < 0.42  # p3's third of the rows


def test_apply_refuses_rows_at_risk_unless_forced(tmp_path: Path, capsys) -> None:
    state = tmp_path / "state"
    cfg = write_yaml(tmp_path / "glb.yml", "- address: 198.18.0.21\n- address: 198.18.0.22\n"
                                           "- address: 198.18.0.23\n")
    live_state(state, cfg)
    # Safe: two proxies start draining at once (no one-at-a-time rule any more).
    write_yaml(cfg, "- address: 198.18.0.21\n- {address: 198.18.0.22, state: draining}\n"
                    "- {address: 198.18.0.23, state: draining}\n")
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run"]) == 0
    assert "rows at risk: 0 of 65536" in capsys.readouterr().out
    # Risky: p3 removed while active.
    write_yaml(cfg, "- address: 198.18.0.21\n- address: 198.18.0.22\n")
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] and doc["diff"]["rows_at_risk"] > 0
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "rows at risk" in err and "--force" in err
    # --force passes the check and goes on to signal the agent (none runs here).
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--force"]) == 1
    err = capsys.readouterr().err
    assert "refused" not in err and "no running director agent" in err


def test_apply_diffs_against_the_live_semantics(tmp_path: Path, capsys) -> None:
    # The agent runs upstream rows; the edit switches to candidates rows and drains p1:
    # the diff must build the old side the upstream way, or it would compare K rows with K rows.
    state = tmp_path / "state"
    cfg = write_yaml(tmp_path / "glb.yml", "- address: 198.18.0.21\n- address: 198.18.0.22\n"
                                           "- address: 198.18.0.23\n")
    cfg.write_text(cfg.read_text().replace("  name: t\n", "  name: t\n  table_semantics: upstream\n"))
    live_state(state, cfg)
    write_yaml(cfg, "- address: 198.18.0.21\n- address: 198.18.0.22\n- address: 198.18.0.23\n")
    assert main(["apply", "--config", str(cfg), "--state-dir", str(state), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "row semantics: upstream -> candidates K=4" in out
    assert "no diff" not in out  # the diff itself was computed
