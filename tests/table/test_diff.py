"""Table diffs count moved rows by backend IP, and render as text and JSON."""

from __future__ import annotations

import json

import numpy as np

from glb_agent.table.diff import diff_table, diff_tables, render_text, to_json
from glb_agent.table.rendezvous import build_rows
from glb_agent.table.spec import Backend, TableSpec

from .factories import spec, v4


def with_backends(table: TableSpec, backends) -> TableSpec:
    return TableSpec(table.name, table.hash_key, table.seed, table.binds, tuple(backends))


def test_identical_tables_are_unchanged() -> None:
    t = spec(8)
    d = diff_tables([t], [build_rows(t)], [t], [build_rows(t)])
    assert d.unchanged
    assert "no changes" in render_text(d)
    assert to_json(d)["unchanged"] is True


def test_reordering_backends_moves_no_rows() -> None:
    t = spec(8)
    shuffled = with_backends(t, reversed(t.backends))
    rows, rows2 = build_rows(t), build_rows(shuffled)
    assert not np.array_equal(rows, rows2)  # the indices did change...
    d = diff_table(t, rows, shuffled, rows2)
    assert d.unchanged  # ...but no flow moves


def test_removed_backend_loses_exactly_its_rows() -> None:
    t = spec(10)
    gone = t.backends[3]
    after = with_backends(t, [b for b in t.backends if b != gone])
    rows_old, rows_new = build_rows(t), build_rows(after)
    d = diff_table(t, rows_old, after, rows_new)
    assert d.primary_changed.size == int((rows_old[:, 0] == 3).sum())
    change = {b.ip: b for b in d.backends}[str(gone.ip)]
    assert change.new is None
    assert change.primary.lost == change.primary.before == int((rows_old[:, 0] == 3).sum())
    assert change.primary.after == change.primary.gained == 0
    # every moved row has exactly one gainer and one loser
    for col, moved in (("primary", d.primary_changed.size), ("secondary", d.secondary_changed.size)):
        assert sum(getattr(b, col).gained for b in d.backends) == moved
        assert sum(getattr(b, col).lost for b in d.backends) == moved


def test_draining_shows_as_state_change_and_primary_loss() -> None:
    t = spec(4)
    drained = with_backends(t, [Backend(t.backends[0].ip, "draining"), *t.backends[1:]])
    d = diff_tables([t], [build_rows(t)], [drained], [build_rows(drained)])
    text = render_text(d)
    assert f"~ {t.backends[0].ip} active, healthy -> draining, healthy: primary" in text
    doc = json.loads(json.dumps(to_json(d)))
    b0 = doc["tables"][0]["backends"][0]
    assert b0["old"] == {"state": "active", "healthy": True}
    assert b0["new"] == {"state": "draining", "healthy": True}
    assert b0["primary"]["after"] == 0 and b0["primary"]["lost"] == b0["primary"]["before"] > 0
    assert doc["tables"][0]["primary_changed"] == b0["primary"]["before"]


def test_added_backend_and_extra_tables_are_reported() -> None:
    t = spec(3)
    grown = with_backends(t, [*t.backends, Backend(v4(99))])
    other = spec(2, name="other")
    d = diff_tables([t], [build_rows(t)], [grown, other], [build_rows(grown), build_rows(other)])
    text = render_text(d)
    assert f"+ {v4(99)} added (active, healthy)" in text
    assert "+ table 1 'other' added" in text
    doc = to_json(d)
    assert doc["tables_added"] == ["other"] and doc["tables_removed"] == []
    assert not doc["unchanged"]


def test_hash_key_and_bind_changes_are_flagged() -> None:
    t = spec(3)
    rekeyed = TableSpec(t.name, bytes(16), t.seed, (), t.backends)
    d = diff_tables([t], [build_rows(t)], [rekeyed], [build_rows(rekeyed)])
    assert not d.unchanged
    assert "hash_key changed" in render_text(d)
    assert "- bind tcp 203.0.113.80 port 80" in render_text(d)
    assert to_json(d)["tables"][0]["binds_removed"] == ["tcp 203.0.113.80 port 80"]
