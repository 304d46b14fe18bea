"""Fixtures shared by the lab tests: each starts from no lab and leaves none behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from glb_agent.lab import run as lab
from tests.support.netns import can_run


@pytest.fixture
def lab_ok() -> Iterator[None]:
    """A clean slate for a test that brings the lab up itself (``lab.down`` also removes the
    lab's run directory, flag files such as ``p2/down`` included)."""
    if why := can_run():
        pytest.skip(why)
    lab.down(quiet=True)
    yield
    lab.down(quiet=True)
