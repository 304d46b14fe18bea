"""Shared fixtures: a director and a proxy namespace with a GUE decapsulator on the proxy."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Lab, can_run

ROOT = Path(__file__).resolve().parents[2]
DIRECTOR = ipaddress.IPv4Address("198.18.0.11")
PROXY = ipaddress.IPv4Address("198.18.0.21")
VIP = ipaddress.IPv4Address("203.0.113.10")
PORT = 19523


@pytest.fixture
def gue_lab() -> Iterator[tuple[Lab, str, str]]:
    """(lab, director namespace, proxy namespace), joined by a veth; VIP bound on the proxy."""
    reason = can_run()
    if reason:
        pytest.skip(reason)
    with Lab() as lab:
        d, p = lab.ns("hcd"), lab.ns("hcp")
        lab.link(d, "eth0", p, "eth0", a_addrs=[f"{DIRECTOR}/24"], b_addrs=[f"{PROXY}/24"])
        subprocess.run(["ip", "netns", "exec", p, "ip", "addr", "add", f"{VIP}/32", "dev", "lo"], check=True)
        yield lab, d, p


def start_decap(lab: Lab, ns: str) -> subprocess.Popen:
    """The test-side decapsulator (decap.py) in ``ns``; returns once it listens."""
    proc = lab.start(sys.executable, "-m", "tests.health.decap", str(PORT), ns=ns, cwd=ROOT,
                     stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"ready": True}
    return proc


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """logs.setup() (the CLI calls it) reconfigures the process-wide glb_agent logger; put it
    back so other test packages' caplog still sees records."""
    root = logging.getLogger("glb_agent")
    saved = (list(root.handlers), root.level, root.propagate)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    root.propagate = saved[2]
