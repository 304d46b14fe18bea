"""The fallback readiness check against a real XDP program in a throw-away namespace.

The check runs in a child Python process inside the namespace, which is where the feed
runs too (ExaBGP starts it there): interface lookups are per network namespace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from glb_agent.bgp.readiness import guarded, resolve
from glb_agent.errors import InputError
from tests.bgp.bgplab import HERE
from tests.support.netns import Lab, sh

pytestmark = [pytest.mark.netns, pytest.mark.bpf]

PROBE = ("import json, sys; from pathlib import Path; from glb_agent.bgp.readiness import xdp_ready; "
         "pin = Path(sys.argv[2]) if len(sys.argv) > 2 else None; "
         "print(json.dumps(xdp_ready(sys.argv[1], pin)))")


def ready_in(ns: str, interface: str, pin_dir: Path | None = None) -> tuple[bool, str]:
    args = [sys.executable, "-c", PROBE, interface] + ([str(pin_dir)] if pin_dir else [])
    ok, why = json.loads(sh(*args, ns=ns).stdout)
    return ok, why


def test_ready_only_while_a_program_is_attached(netlab: Lab, tmp_path: Path) -> None:
    a, b = netlab.ns("ra"), netlab.ns("rb")
    netlab.link(a, "eth0", b, "eth0")
    ok, why = ready_in(a, "eth0")
    assert not ok and "no XDP program" in why
    assert ready_in(a, "nope0") == (False, "interface nope0 does not exist")
    sh(sys.executable, str(HERE / "xdp_passer.py"), "eth0", ns=a)
    ok, why = ready_in(a, "eth0")
    assert ok and "attached to eth0" in why
    pins = tmp_path / "pins"
    pins.mkdir()
    ok, why = ready_in(a, "eth0", pins)
    assert not ok and "no pinned maps" in why  # program there, tables not loaded yet
    (pins / "glb_tables").write_text("")
    assert ready_in(a, "eth0", pins)[0]
    sh("ip", "link", "set", "dev", "eth0", "xdp", "off", ns=a)
    assert not ready_in(a, "eth0", pins)[0]


def test_resolve_and_guard() -> None:
    with pytest.raises(InputError):
        resolve("maybe", "eth0")
    check, kind = resolve("xdp", "eth0")
    assert kind == "xdp" and callable(check)

    def boom() -> tuple[bool, str]:
        raise RuntimeError("map read failed")

    assert guarded(boom)() == (False, "readiness check raised RuntimeError: map read failed")
