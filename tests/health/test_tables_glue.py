"""Health view -> table specs -> rows: the path the lead's table swap will take.

No data plane here: the rows are built exactly as they would be handed to
``XdpDirector.update_tables``, and a dead backend must stop being anyone's primary.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from glb_agent.config import load_config
from glb_agent.config.tables import table_specs
from glb_agent.health import Checker, HealthChange, targets_from_config
from glb_agent.health.target import Key
from glb_agent.table.rendezvous import build_all
from tests.health.support import http_backends
from tests.health.test_cli import write_config


def test_a_dead_backend_stops_being_primary_after_the_callback(tmp_path: Path) -> None:
    with http_backends(3, base="127.18.11.1") as backends:
        loaded = load_config(write_config(tmp_path, backends))
        builds: list[tuple[dict[Key, bool], list[np.ndarray]]] = []
        got = asyncio.Event()

        async def on_change(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
            # building 65,536-row tables is CPU work: off the probing loop
            specs = table_specs(loaded, health=view)
            rows = await asyncio.get_running_loop().run_in_executor(None, build_all, specs)
            builds.append((view, rows))
            got.set()

        async def scenario() -> None:
            targets = targets_from_config(loaded)
            async with Checker(targets, on_change=on_change) as checker:
                first = build_all(table_specs(loaded, health=checker.view()))[0]
                assert set(np.unique(first[:, 0])) == {0, 1, 2}
                backends[1].stop()
                async with asyncio.timeout(3):
                    while not builds or builds[-1][0][("web", backends[1].address)]:
                        got.clear()
                        await got.wait()
                rows = builds[-1][1][0]
                assert 1 not in set(np.unique(rows[:, 0])), "dead backend is still a primary"
                moved = first[:, 0] == 1
                # only the dead backend's rows moved, each to its old secondary; the dead one
                # stays in every row it was in, at the end (its connections may be alive)
                assert (rows[~moved, 0] == first[~moved, 0]).all()
                assert (rows[moved, 0] == first[moved, 1]).all()
                assert ((rows == 1).any(axis=1) == (first == 1).any(axis=1)).all()
                assert (rows[(rows == 1).any(axis=1), -1] == 1).all()
                backends[1].start()
                async with asyncio.timeout(3):
                    while not builds[-1][0][("web", backends[1].address)]:
                        got.clear()
                        await got.wait()
                assert (builds[-1][1][0] == first).all()

        asyncio.run(scenario())
