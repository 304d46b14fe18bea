"""Properties rendezvous hashing promises, checked on random tables with hypothesis,
for both row semantics (upstream's two columns and K candidates)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glb_agent.table.rendezvous import build_rows, rank_all
from glb_agent.table.spec import TABLE_ROWS, Backend, TableSpec

from .factories import spec, v4, v6

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.binary(min_size=16, max_size=16)
states = st.sampled_from(["active", "draining", "filling", "inactive"])


@st.composite
def tables(draw, min_backends: int = 2, max_backends: int = 40, all_good: bool = False,
           semantics: str | None = None) -> TableSpec:
    n = draw(st.integers(min_backends, max_backends))
    ids = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    backends = []
    for i in ids:
        ip = v6(i) if draw(st.booleans()) and not all_good else v4(i)
        if all_good:
            backends.append(Backend(ip))
        else:
            backends.append(Backend(ip, draw(states), draw(st.booleans())))
    sem = semantics or draw(st.sampled_from(["upstream", "candidates"]))
    k = 2 if sem == "upstream" else draw(st.integers(2, 8))
    return dataclasses.replace(spec(backends, seed=draw(seeds)), semantics=sem, candidates=k)


def without(table: TableSpec, gone: int) -> TableSpec:
    return dataclasses.replace(table, backends=table.backends[:gone] + table.backends[gone + 1 :])


def with_extra(table: TableSpec, backend: Backend) -> TableSpec:
    return dataclasses.replace(table, backends=(*table.backends, backend))


def sigma_bound(p: float, n: int = TABLE_ROWS, k: float = 6.0) -> tuple[float, float]:
    """mean ± k sigma of Binomial(n, p): a false alarm is ~1e-9 per check at k=6."""
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    return mean - k * sd, mean + k * sd


def available(table: TableSpec) -> int:
    return sum(b.state != "inactive" for b in table.backends)


@SETTINGS
@given(tables())
def test_a_backend_is_at_most_once_per_row(table: TableSpec) -> None:
    if not available(table):
        return
    rows = build_rows(table)
    assert rows.shape == (TABLE_ROWS, table.width)
    assert (rows >= 0).all() and (rows < len(table.backends)).all()
    if table.semantics == "upstream" and available(table) == 1:
        assert (rows[:, 0] == rows[:, 1]).all()  # upstream's one-backend rows
        return
    ordered = np.sort(rows, axis=1)
    assert (ordered[:, 1:] != ordered[:, :-1]).all()
    assert not {i for i, b in enumerate(table.backends) if b.state == "inactive"} & set(np.unique(rows).tolist())


@SETTINGS
@given(tables(min_backends=3), st.data())
def test_removing_a_backend_only_changes_its_own_rows(table: TableSpec, data) -> None:
    if available(table) < 3:
        return
    gone = data.draw(st.integers(0, len(table.backends) - 1))
    before = build_rows(table)
    rest = without(table, gone)
    if table.semantics == "candidates" and rest.width < table.width:
        return  # K was capped by the backends: every row loses a column, by construction
    after = build_rows(rest)
    # compare by backend, not index: indices after `gone` shift down by one
    ip_before = np.array([int(b.ip) for b in table.backends], dtype=object)[before]
    ip_after = np.array([int(b.ip) for b in rest.backends], dtype=object)[after]
    # rows that contained it: in the send order, or among the ranked candidates (a row that
    # sends to the table's best usable backend carries only K - 1 of its candidates)
    involved = (before == gone).any(axis=1) | (rank_all([table])[0] == gone).any(axis=1)
    assert (ip_before[~involved] == ip_after[~involved]).all()
    assert int(table.backends[gone].ip) not in set(ip_after.reshape(-1).tolist())


@SETTINGS
@given(tables(min_backends=2, max_backends=60, all_good=True))
def test_adding_a_backend_moves_about_one_nth_of_primaries(table: TableSpec) -> None:
    before = build_rows(table)
    grown = with_extra(table, Backend(v4(20_000)))
    after = build_rows(grown)
    new = len(table.backends)
    moved = before[:, 0] != after[:, 0]
    # every primary that moved went to the newcomer, and nothing else moved
    assert (after[moved, 0] == new).all()
    assert moved.sum() == (after[:, 0] == new).sum()
    low, high = sigma_bound(1 / (new + 1))
    assert low <= moved.sum() <= high


@SETTINGS
@given(tables(min_backends=2, max_backends=200, all_good=True))
def test_primaries_are_balanced_within_binomial_bounds(table: TableSpec) -> None:
    counts = np.bincount(build_rows(table)[:, 0], minlength=len(table.backends))
    low, high = sigma_bound(1 / len(table.backends))
    assert counts.min() >= low and counts.max() <= high, (counts.min(), counts.max(), low, high)


@SETTINGS
@given(tables(min_backends=2, max_backends=60, all_good=True, semantics="candidates"))
def test_adding_a_backend_keeps_every_old_candidate_in_reach(table: TableSpec) -> None:
    # K candidates: a newcomer enters ~K/N of the rows and pushes out only the last
    # candidate, so the old first stays in every row (its connections are reachable)
    if table.width < table.candidates:
        return  # capped rows grow a column instead
    before, after = build_rows(table), build_rows(with_extra(table, Backend(v4(20_000))))
    new = len(table.backends)
    assert ((after == before[:, :1]).any(axis=1)).all()
    entered = (after == new).any(axis=1)
    assert (after[~entered] == before[~entered]).all()
    low, high = sigma_bound(table.candidates / (new + 1))
    assert low <= entered.sum() <= high


@SETTINGS
@given(tables(min_backends=2, semantics="candidates"))
def test_send_order_is_destination_then_healthy_then_unhealthy(table: TableSpec) -> None:
    if not available(table):
        return
    rows = build_rows(table)
    ranked = rank_all([table])[0]
    healthy = np.array([b.healthy for b in table.backends])
    usable = healthy & np.array([b.state in ("active", "filling") for b in table.backends])
    has_usable = usable[ranked].any(axis=1)
    # a usable candidate exists: it is first, and the row is a permutation of the candidates
    first_usable = ranked[np.arange(TABLE_ROWS), np.argmax(usable[ranked], axis=1)]
    assert (rows[has_usable, 0] == first_usable[has_usable]).all()
    assert (np.sort(rows[has_usable], axis=1) == np.sort(ranked[has_usable], axis=1)).all()
    # behind the destination: every healthy entry before every unhealthy one
    h = healthy[rows[:, 1:]].astype(int)
    assert (np.diff(h, axis=1) <= 0).all()
    # no usable candidate: new flows still go to a usable backend when the table has one
    if usable[[b.state != "inactive" for b in table.backends]].any():
        assert usable[rows[:, 0]].all()


@SETTINGS
@given(tables(min_backends=2, semantics="upstream"))
def test_states_only_swap_pairs_and_only_by_the_rule(table: TableSpec) -> None:
    if available(table) < 2:
        return
    rows = build_rows(table)
    # The ranking ignores state and health (except inactive): an all-good copy is the raw order.
    plain = tuple(b if b.state == "inactive" else Backend(b.ip) for b in table.backends)
    raw = build_rows(dataclasses.replace(table, backends=plain))
    for (p, s), (rp, rs) in zip(rows.tolist()[:4096], raw.tolist()[:4096], strict=True):
        first = table.backends[rp]
        swap = (first.state == "draining" or not first.healthy) and table.backends[rs].state == "active"
        assert (p, s) == ((rs, rp) if swap else (rp, rs))
