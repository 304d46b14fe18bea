"""The default pin layout of ``glb_agent.util.paths``, moved under a scratch bpffs directory.

Tests of the migration from the pre-layout pin paths need the *default* paths (legacy
adoption only applies there) without touching the host's real /sys/fs/bpf/glb, which
other test runs may use at the same time. Import the fixture into a test module.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def pin_layout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A root R with R/glb as PIN_ROOT, R/glb and R/glb-proxy as the legacy roots."""
    from glb_agent.util import paths

    root = Path(f"/sys/fs/bpf/glbt-{secrets.token_hex(3)}")
    monkeypatch.setattr(paths, "PIN_ROOT", root / "glb")
    monkeypatch.setitem(paths.LEGACY_PIN_ROOTS, "director", root / "glb")
    monkeypatch.setitem(paths.LEGACY_PIN_ROOTS, "proxy", root / "glb-proxy")
    yield root
    shutil.rmtree(root, ignore_errors=True)
