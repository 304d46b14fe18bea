"""Properties rendezvous hashing promises, checked on random tables with hypothesis."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glb_agent.table.rendezvous import build_rows
from glb_agent.table.spec import TABLE_ROWS, Backend, TableSpec

from .factories import spec, v4, v6

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.binary(min_size=16, max_size=16)
states = st.sampled_from(["active", "draining", "filling", "inactive"])


@st.composite
def tables(draw, min_backends: int = 2, max_backends: int = 40, all_good: bool = False) -> TableSpec:
    n = draw(st.integers(min_backends, max_backends))
    ids = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    backends = []
    for i in ids:
        ip = v6(i) if draw(st.booleans()) and not all_good else v4(i)
        if all_good:
            backends.append(Backend(ip))
        else:
            backends.append(Backend(ip, draw(states), draw(st.booleans())))
    return spec(backends, seed=draw(seeds))


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
    rows = build_rows(table) if available(table) else None
    if rows is None:
        return
    if available(table) >= 2:
        assert (rows[:, 0] != rows[:, 1]).all()
    else:
        assert (rows[:, 0] == rows[:, 1]).all()


@SETTINGS
@given(tables(min_backends=3), st.data())
def test_removing_a_backend_only_changes_its_own_rows(table: TableSpec, data) -> None:
    if available(table) < 3:
        return
    gone = data.draw(st.integers(0, len(table.backends) - 1))
    before = build_rows(table)
    rest = table.backends[:gone] + table.backends[gone + 1 :]
    after = build_rows(TableSpec(table.name, table.hash_key, table.seed, table.binds, rest))
    # compare by backend, not index: indices after `gone` shift down by one
    ip_before = np.array([int(b.ip) for b in table.backends], dtype=object)[before]
    ip_after = np.array([int(b.ip) for b in rest], dtype=object)[after]
    involved = (before == gone).any(axis=1)
    assert (ip_before[~involved] == ip_after[~involved]).all()
    assert int(table.backends[gone].ip) not in set(ip_after.reshape(-1).tolist())


@SETTINGS
@given(tables(min_backends=2, max_backends=60, all_good=True))
def test_adding_a_backend_moves_about_one_nth_of_primaries(table: TableSpec) -> None:
    before = build_rows(table)
    grown = TableSpec(
        table.name, table.hash_key, table.seed, table.binds, (*table.backends, Backend(v4(20_000)))
    )
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
@given(tables(min_backends=2))
def test_states_only_swap_pairs_and_only_by_the_rule(table: TableSpec) -> None:
    if available(table) < 2:
        return
    rows = build_rows(table)
    # The ranking ignores state and health (except inactive): an all-good copy is the raw order.
    plain = tuple(b if b.state == "inactive" else Backend(b.ip) for b in table.backends)
    raw = build_rows(TableSpec(table.name, table.hash_key, table.seed, table.binds, plain))
    for (p, s), (rp, rs) in zip(rows.tolist()[:4096], raw.tolist()[:4096], strict=True):
        first = table.backends[rp]
        swap = (first.state == "draining" or not first.healthy) and table.backends[rs].state == "active"
        assert (p, s) == ((rs, rp) if swap else (rp, rs))
