"""The roles in VMs: `molecule test -s ci` (molecule/ci: one director and one proxy booted from
the appliance image, BIRD router and client namespaces on the host), i.e. create, converge
(playbooks/site.yml), idempotence, verify (tests/infra + HTTP to the VIP through BGP/ECMP,
GUE and DSR), destroy.

Gated like the image boot test (GLB_VM_TESTS=1, root). Runs after it, so the image it boots is
the one that test built. The full 2 + 2 scenario is `molecule test` (docs/image.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.skipif(os.environ.get("GLB_VM_TESTS") != "1", reason="VM test: set GLB_VM_TESTS=1 (docs/image.md)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="VMs, bridges and namespaces need root"),
    pytest.mark.timeout(3600),
]


def test_molecule_ci_scenario(tmp_path: Path) -> None:
    log = tmp_path / "molecule.log"
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_FORCE_COLOR="0",
               NO_COLOR="1")
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run([str(BIN / "molecule"), "test", "-s", "ci"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, timeout=3300)
    took = time.monotonic() - start
    text = log.read_text(errors="replace")
    print(f"molecule test -s ci: exit {result.returncode} in {took:.0f} s")
    assert result.returncode == 0, f"molecule test -s ci failed after {took:.0f} s; last lines:\n{text[-6000:]}"
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in text, f"molecule did not run {step}"
