"""BIRD's own parser as the judge of a rendered bird.conf (`bird -p`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def assert_bird_parses(conf: str, tmp_path: Path) -> None:
    bird = shutil.which("bird")
    if bird is None:
        pytest.skip("bird2 is not installed (scripts/setup.sh installs it): bird.conf not parsed")
    (tmp_path / "bird.conf").write_text(conf)
    parsed = subprocess.run([bird, "-p", "-c", str(tmp_path / "bird.conf")], capture_output=True, text=True,
                            timeout=30)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr + conf
