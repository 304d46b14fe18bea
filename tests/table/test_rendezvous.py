"""The row builder: C, numpy and the literal pure-Python reference must agree exactly.

Tables here use upstream semantics (TableSpec's default); test_send_order.py covers the
``candidates`` rows."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from glb_agent.errors import InputError
from glb_agent.table import rendezvous
from glb_agent.table.reference import reference_row, reference_send_order
from glb_agent.table.rendezvous import build_all, build_rows, have_c_extension
from glb_agent.table.rendezvous_np import topk_numpy
from glb_agent.table.spec import TABLE_ROWS, Backend

from .factories import spec, v4, v6

SAMPLE_ROWS = [0, 1, 2, 255, 256, 4095, 32768, 65534, 65535, *random.Random(7).sample(range(TABLE_ROWS), 6)]


def mixed_spec():
    """Every state, unhealthy ones, IPv4 and IPv6 interleaved (the C code groups them)."""
    return spec(
        [
            Backend(v4(1)),
            Backend(v6(1), "draining"),
            Backend(v4(2), "filling"),
            Backend(v6(2), "active", healthy=False),
            Backend(v4(3), "inactive"),
            Backend(v4(4), "draining", healthy=False),
            Backend(v6(3)),
            Backend(v4(5), "active", healthy=False),
        ]
    )


@pytest.fixture
def require_c() -> None:
    assert have_c_extension(), "the C extension is not built: run 'pip install -e .'"


def test_rows_have_the_documented_shape_and_dtype() -> None:
    rows = build_rows(spec(3))
    assert rows.shape == (TABLE_ROWS, 2)
    assert rows.dtype == np.int32  # signed: the data-plane contract pads short rows with -1
    wide = build_rows(dataclasses.replace(spec(6), semantics="candidates", candidates=4))
    assert wide.shape == (TABLE_ROWS, 4) and wide.dtype == np.int32
    capped = build_rows(dataclasses.replace(spec(3), semantics="candidates", candidates=8))
    assert capped.shape == (TABLE_ROWS, 3)  # K is capped by the available backends


@pytest.mark.parametrize(
    "table",
    [spec(2), spec(37), mixed_spec(), spec([Backend(v6(i)) for i in range(9)])],
    ids=["2-v4", "37-v4", "mixed-states-v4-v6", "9-v6"],
)
def test_fast_builders_match_reference_on_sample_rows(table, require_c) -> None:
    for impl in ("c", "numpy"):
        rows = build_rows(table, impl=impl)
        got = [tuple(int(x) for x in rows[r]) for r in SAMPLE_ROWS]
        assert got == [reference_row(table, r) for r in SAMPLE_ROWS], impl
    for k in (2, 3, 4, 8):
        wide = dataclasses.replace(table, semantics="candidates", candidates=k)
        for impl in ("c", "numpy"):
            rows = build_rows(wide, impl=impl)
            got = [[int(x) for x in rows[r]] for r in SAMPLE_ROWS]
            assert got == [reference_send_order(wide, r) for r in SAMPLE_ROWS], (impl, k)


@pytest.mark.parametrize(
    "table",
    [spec(1), spec(5), spec(64, seed=bytes(16)), mixed_spec()],
    ids=["1", "5", "64-zero-seed", "mixed"],
)
def test_c_and_numpy_agree_on_every_row(table, require_c) -> None:
    assert np.array_equal(build_rows(table, impl="c"), build_rows(table, impl="numpy"))
    for k in (2, 4, 8):
        wide = dataclasses.replace(table, semantics="candidates", candidates=k)
        assert np.array_equal(build_rows(wide, impl="c"), build_rows(wide, impl="numpy")), k


def test_equal_ranks_resolve_to_the_earlier_backend_everywhere(require_c) -> None:
    # The same IP twice ranks identically in every row: a real tie. IPv6 in between makes
    # the C code's IPv4-then-IPv6 grouping matter.
    table = spec([Backend(v4(9)), Backend(v6(1)), Backend(v4(8)), Backend(v4(9))])
    c, n = build_rows(table, impl="c"), build_rows(table, impl="numpy")
    assert np.array_equal(c, n)
    tied = (c[:, 0] == 0) & (c[:, 1] == 3)
    assert tied.any() and not ((c[:, 0] == 3) & (c[:, 1] == 0)).any()
    for r in np.flatnonzero(tied)[:3]:
        assert reference_row(table, int(r)) == (0, 3)


def test_build_all_splits_work_but_not_results(require_c) -> None:
    tables = [spec(7), mixed_spec(), spec(3, seed=bytes(range(16)))]
    together = build_all(tables)
    for table, rows in zip(tables, together, strict=True):
        assert np.array_equal(rows, build_rows(table))


def test_single_available_backend_fills_both_columns() -> None:
    table = spec([Backend(v4(0), "inactive"), Backend(v4(1)), Backend(v4(2), "inactive")])
    for impl in ("c", "numpy"):
        rows = build_rows(table, impl=impl)
        assert (rows == 1).all(), impl


@pytest.mark.parametrize(
    "backends", [[], [Backend(v4(0), "inactive"), Backend(v4(1), "inactive")]], ids=["none", "all-inactive"]
)
def test_no_available_backend_is_an_input_error(backends) -> None:
    with pytest.raises(InputError, match="no available backend") as exc:
        build_rows(spec(backends, name="web"))
    assert "'web'" in str(exc.value)


def test_missing_seed_explains_that_binaries_lack_it() -> None:
    with pytest.raises(InputError, match="seed must be 16 bytes"):
        build_rows(spec(3, seed=b""))


def test_rows_index_the_full_list_and_never_pick_inactive() -> None:
    table = spec([Backend(v4(0), "inactive"), Backend(v4(1)), Backend(v4(2), "inactive"), Backend(v4(3))])
    rows = build_rows(table)
    assert set(np.unique(rows).tolist()) == {1, 3}


def _rows_where(rows: np.ndarray, first: int, second: int) -> np.ndarray:
    return (rows[:, 0] == first) & (rows[:, 1] == second)


@pytest.mark.parametrize(
    ("bad", "other", "swapped"),
    [
        (Backend(v4(0), "draining"), Backend(v4(1)), True),
        (Backend(v4(0), "active", healthy=False), Backend(v4(1)), True),
        # upstream checks only the secondary's state, not its health: the quirk we keep
        (Backend(v4(0), "draining"), Backend(v4(1), "active", healthy=False), True),
        (Backend(v4(0), "draining"), Backend(v4(1), "filling"), False),
        (Backend(v4(0), "active", healthy=False), Backend(v4(1), "draining"), False),
        (Backend(v4(0), "filling"), Backend(v4(1)), False),
        (Backend(v4(0), "filling", healthy=False), Backend(v4(1)), True),
    ],
    ids=[
        "draining-vs-active",
        "unhealthy-vs-active",
        "draining-vs-unhealthy-active",
        "draining-vs-filling",
        "unhealthy-vs-draining",
        "filling-vs-active",
        "unhealthy-filling-vs-active",
    ],
)
def test_failover_swap_follows_upstream(bad: Backend, other: Backend, swapped: bool) -> None:
    # Ranking ignores state and health, so the all-good table shows the raw order.
    raw = build_rows(spec([Backend(bad.ip), Backend(other.ip)]))
    rows = build_rows(spec([bad, other]))
    bad_first = _rows_where(raw, 0, 1)
    assert bad_first.any() and _rows_where(raw, 1, 0).any()
    if swapped:
        assert (rows[bad_first] == [1, 0]).all()
    else:
        assert (rows[bad_first] == [0, 1]).all()
    # rows where the other one ranks first follow the same rule the other way round
    other_bad = other.state == "draining" or not other.healthy
    expected = [0, 1] if other_bad and bad.state == "active" else [1, 0]
    assert (rows[~bad_first] == expected).all()


def test_numpy_fallback_is_used_when_the_extension_is_missing(monkeypatch, require_c) -> None:
    table = mixed_spec()
    expected = build_rows(table, impl="c")
    monkeypatch.setattr(rendezvous, "_rendezvous", None)
    assert np.array_equal(build_rows(table), expected)
    with pytest.raises(RuntimeError, match="not compiled"):
        build_rows(table, impl="c")


def test_numpy_builder_handles_row_subsets() -> None:
    table = mixed_spec()
    avail = [(i, b) for i, b in enumerate(table.backends) if b.state != "inactive"]
    rows = np.array([5, 65535, 12], dtype=np.uint32)
    for k in (1, 2, 5):
        some = topk_numpy(table.seed, [b.ip.packed for _, b in avail], [i for i, _ in avail], k, rows)
        full = topk_numpy(table.seed, [b.ip.packed for _, b in avail], [i for i, _ in avail], k)
        assert np.array_equal(some, full[rows])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((bytes(15), b"\1\2\3\4", b"", b"\0" * 4, 0, 1), "seed"),
        ((bytes(16), b"\1\2\3", b"", b"\0" * 4, 0, 1), "v4/v6"),
        ((bytes(16), b"\1\2\3\4", b"", b"\0" * 8, 0, 1), "v4/v6"),
        ((bytes(16), b"", b"", b"", 0, 1), "no candidate"),
        ((bytes(16), b"\1\2\3\4", b"", b"\0" * 4, 0, 0x10001), "row range"),
        ((bytes(16), b"\1\2\3\4", b"", b"\0" * 4, 5, 4), "row range"),
        ((bytes(16), b"\1\2\3\4", b"", b"\0" * 4, 0, 1, 2), "at most the number of candidates"),
        ((bytes(16), b"\1\2\3\4" * 9, b"", b"\0" * 36, 0, 1, 9), "k must be 1..8"),
        ((bytes(16), b"\1\2\3\4", b"", b"\0" * 4, 0, 1, 0), "k must be 1..8"),
    ],
)
def test_extension_rejects_inconsistent_arguments(args, message, require_c) -> None:
    from glb_agent.table import _rendezvous

    seed, a4, a6, index, start, end, *k = args
    out = np.zeros((TABLE_ROWS, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match=message):
        _rendezvous.topk(seed, a4, a6, index, out, start, end, k[0] if k else 1)


def test_extension_checks_output_size(require_c) -> None:
    from glb_agent.table import _rendezvous

    a4, index = bytes(range(16)), np.arange(4, dtype=np.uint32)
    small = np.zeros((10, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match="output too small"):
        _rendezvous.topk(bytes(16), a4, b"", index, small, 0, 11, 2)
    _rendezvous.topk(bytes(16), a4, b"", index, small, 0, 10, 2)  # exactly fits
    with pytest.raises(ValueError, match="output too small"):
        _rendezvous.topk(bytes(16), a4, b"", index, small, 0, 6, 4)
