"""The send order of ``candidates`` rows, one test per rule of send_order.py.

Each test builds a small table, finds rows by their raw ranking (the ranking ignores
state and health) and checks what the rule says those rows must hold. The pure-Python
reference is checked on the same rows, so the rules and the oracle cannot drift apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from glb_agent.table.reference import reference_send_order
from glb_agent.table.rendezvous import build_rows, rank_all
from glb_agent.table.send_order import two_columns
from glb_agent.table.spec import TABLE_ROWS, Backend, TableSpec

from .factories import spec, v4

A, B, C, D, E = range(5)


def table(*backends: Backend, k: int = 4) -> TableSpec:
    return dataclasses.replace(spec(list(backends)), semantics="candidates", candidates=k)


def plain(n: int) -> list[Backend]:
    return [Backend(v4(i)) for i in range(n)]


def ranked_rows(t: TableSpec, k: int | None = None) -> np.ndarray:
    """Raw rank order of every row (state and health play no part in it)."""
    raw = dataclasses.replace(t, backends=tuple(Backend(b.ip) for b in t.backends),
                              candidates=k or t.candidates)
    return rank_all([raw])[0]


def rows_where(ranked: np.ndarray, *prefix: int) -> np.ndarray:
    """Row numbers whose ranking starts with ``prefix``."""
    hit = np.ones(ranked.shape[0], dtype=bool)
    for j, b in enumerate(prefix):
        hit &= ranked[:, j] == b
    found = np.flatnonzero(hit)
    assert found.size, f"no row ranks {prefix} first"
    return found


def check_reference(t: TableSpec, rows: np.ndarray, picked: np.ndarray) -> None:
    for r in picked[:5]:
        assert [int(x) for x in rows[r]] == reference_send_order(t, int(r)), r


def test_all_good_rows_are_the_rank_order() -> None:
    t = table(*plain(6))
    rows = build_rows(t)
    assert np.array_equal(rows, ranked_rows(t).astype(np.int32))


def test_first_usable_candidate_is_the_destination_and_draining_stays_behind_it() -> None:
    t = table(Backend(v4(0), "draining"), *plain(5)[1:])
    rows, ranked = build_rows(t), ranked_rows(t)
    drained_first = rows_where(ranked, A)
    assert (rows[drained_first, 0] == ranked[drained_first, 1]).all()
    assert (rows[drained_first, 1] == A).all()  # right behind the destination: hop 1
    assert (rows[drained_first, 2:] == ranked[drained_first, 2:]).all()
    drained_second = rows_where(ranked, B, A)
    assert (rows[drained_second] == ranked[drained_second]).all()  # already behind
    check_reference(t, rows, drained_first)


def test_filling_is_usable() -> None:
    t = table(Backend(v4(0), "filling"), *plain(4)[1:])
    rows, ranked = build_rows(t), ranked_rows(t)
    picked = rows_where(ranked, A)
    assert (rows[picked, 0] == A).all()
    assert np.array_equal(rows, ranked.astype(np.int32))


def test_unhealthy_candidates_go_to_the_end_but_stay() -> None:
    t = table(Backend(v4(0), healthy=False), Backend(v4(1), "draining", healthy=False), *plain(5)[2:])
    rows, ranked = build_rows(t), ranked_rows(t)
    picked = rows_where(ranked, A, B)
    assert (rows[picked, :2] == ranked[picked, 2:4]).all()
    assert (rows[picked, 2:] == [A, B]).all()  # rank order among the unhealthy
    behind = np.intersect1d(rows_where(ranked, C, A), np.flatnonzero(~(ranked == B).any(axis=1)))
    assert behind.size and (rows[behind, 0] == C).all() and (rows[behind, -1] == A).all()
    assert ((rows == A).any(axis=1) == (ranked == A).any(axis=1)).all()  # never dropped
    check_reference(t, rows, picked)


def test_inactive_backends_leave_every_row() -> None:
    t = table(Backend(v4(0), "inactive"), *plain(5)[1:])
    rows = build_rows(t)
    assert not (rows == A).any()
    # the others keep their relative order: the next candidate moves up
    others = dataclasses.replace(t, backends=t.backends[1:])
    assert np.array_equal(rows - 1, build_rows(others))


def test_all_candidates_unhealthy_sends_to_the_tables_best_healthy_backend() -> None:
    t = table(*(Backend(v4(i), healthy=False) for i in range(3)), *plain(6)[3:], k=3)
    rows, ranked = build_rows(t), ranked_rows(t, k=6)
    dead = np.isin(ranked[:, :3], [A, B, C]).all(axis=1)
    picked = np.flatnonzero(dead)
    assert picked.size
    assert (rows[picked, 0] == ranked[picked, 3]).all()  # the best-ranked healthy one
    assert (rows[picked, 1:] == ranked[picked, :2]).all()  # then the candidates, K wide
    check_reference(t, rows, picked)


def test_no_usable_backend_anywhere_prefers_a_healthy_draining_one() -> None:
    t = table(Backend(v4(0), healthy=False), Backend(v4(1), "draining"), Backend(v4(2), healthy=False),
              Backend(v4(3), "draining"), k=2)
    rows, ranked = build_rows(t), ranked_rows(t, k=4)
    cand_draining = rows_where(ranked, A, B)
    assert (rows[cand_draining] == [B, A]).all()  # the draining candidate leads
    none_healthy = rows_where(ranked, A, C)
    best_healthy = ranked[none_healthy, 2]  # B or D, whichever ranks better
    assert (rows[none_healthy, 0] == best_healthy).all() and (rows[none_healthy, 1] == A).all()
    check_reference(t, rows, none_healthy)


def test_nothing_healthy_keeps_the_rank_order() -> None:
    t = table(*(Backend(v4(i), healthy=False) for i in range(4)), k=3)
    assert np.array_equal(build_rows(t), ranked_rows(t).astype(np.int32))


def test_an_inactive_healthy_backend_is_no_fallback() -> None:
    # found by hypothesis: every available backend is unhealthy, the one healthy backend is
    # inactive; it must not be sent to (it is in no row), the rank order stands
    t = table(*(Backend(v4(i), healthy=False) for i in range(4)), Backend(v4(4), "inactive"), k=2)
    rows = build_rows(t)
    assert not (rows == 4).any()
    assert np.array_equal(rows, ranked_rows(dataclasses.replace(t, backends=t.backends[:4])).astype(np.int32))


def test_k_is_capped_by_the_available_backends() -> None:
    t = table(*plain(3), Backend(v4(3), "inactive"), k=8)
    assert build_rows(t).shape == (TABLE_ROWS, 3)
    assert build_rows(table(*plain(1), k=4)).shape == (TABLE_ROWS, 1)


def test_upstream_view_is_the_first_two_of_the_send_order() -> None:
    t = table(Backend(v4(0), "draining"), *plain(5)[1:])
    rows = build_rows(t)
    assert np.array_equal(two_columns(rows), rows[:, :2])
    one = build_rows(table(*plain(1)))
    assert (two_columns(one) == 0).all()  # one proxy fills both, as upstream does
    padded = np.array([[3, -1], [1, 2]])
    assert two_columns(padded).tolist() == [[3, 3], [1, 2]]


@pytest.mark.parametrize("k", [2, 4])
def test_upstream_semantics_ignore_k_and_keep_the_swap(k: int) -> None:
    t = dataclasses.replace(spec([Backend(v4(0), "draining"), *plain(4)[1:]]), candidates=k)
    rows = build_rows(t)
    assert rows.shape == (TABLE_ROWS, 2)
    ranked = ranked_rows(dataclasses.replace(t, semantics="candidates", candidates=2))
    picked = rows_where(ranked, A)
    assert (rows[picked] == ranked[picked][:, ::-1]).all()
