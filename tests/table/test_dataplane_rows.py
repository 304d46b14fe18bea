"""What the director loader is handed: the whole send order of every row (K wide), or
upstream's two columns, exactly as the table builder made them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glb_agent.config import load_config
from glb_agent.dataplane.director_config import director_tables, row_width, table_rows
from glb_agent.table.spec import TABLE_ROWS
from tests.support.fleet import proxy_address, write_fleet

THREE = {proxy_address(1): "active", proxy_address(2): "draining", proxy_address(3): "active"}


def test_the_loader_gets_whole_send_orders(tmp_path: Path) -> None:
    loaded = load_config(write_fleet(tmp_path / "glb.yml", THREE))
    ((_, rows),) = director_tables(loaded)
    ((_, full),) = table_rows(loaded)
    assert rows.shape == (TABLE_ROWS, 3) and np.array_equal(rows, full)  # K=4 capped at 3
    assert not (rows[:, 0] == 1).any()  # the draining proxy is nobody's destination...
    assert (rows == 1).any(axis=1).all()  # ...and in every row's hop list
    assert row_width(loaded) == 4


def test_upstream_fleets_get_two_columns(tmp_path: Path) -> None:
    loaded = load_config(write_fleet(tmp_path / "glb.yml", THREE, fleet={"table_semantics": "upstream"}))
    ((_, rows),) = director_tables(loaded)
    assert rows.shape == (TABLE_ROWS, 2) and row_width(loaded) == 2
