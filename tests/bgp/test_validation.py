"""Bad BGP settings are refused by ``glb-agent validate`` with exit 2 and the exact line.

A ``#!`` marker ends the line each error must point at, so expectations cannot drift.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glb_agent.cli import main
from tests.bgp.bgplab import CONFIG

GOOD = CONFIG.format(hold=9)


def replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


D1 = '    gateway_mac: "02:47:4c:00:00:01"\n  - name: d2\n'
CASES: dict[str, tuple[str, str]] = {
    "unknown_peer": (replace(D1, '    gateway_mac: "02:47:4c:00:00:01"\n    bgp_peers: [r2]  #!\n  - name: d2\n'),
                     "unknown BGP peer 'r2'"),
    "asn_out_of_range": (replace("      asn: 65000\n", "      asn: 4294967296  #!\n"), "out of range"),
    "asn_reserved": (replace("  local_asn: 65100\n", "  local_asn: 23456  #!\n"), "reserved"),
    "hold_time_too_short": (replace("  hold_time: 9\n", "  hold_time: 2  #!\n"), "hold_time must be"),
    # A cross-field model rule: reported at the bgp section.
    "keepalive_too_long": (replace("bgp:\n  local_asn: 65100\n  hold_time: 9\n",
                                   "bgp:  #!\n  local_asn: 65100\n  hold_time: 9\n  keepalive: 4\n"),
                           "keepalive 4 must be"),
    # Rules added by check_bgp_sessions:
    "empty_bgp_peers": (replace(D1, '    gateway_mac: "02:47:4c:00:00:01"\n    bgp_peers: []  #!\n  - name: d2\n'),
                        "would never announce"),
    "peer_listed_twice": (
        replace(D1, '    gateway_mac: "02:47:4c:00:00:01"\n    bgp_peers:\n      - r1\n      - r1  #!\n  - name: d2\n'),
        "listed twice"),
    "ipv6_peer_from_ipv4_director": (
        replace("      asn: 65000\n", "      asn: 65000\n    - name: r6\n      address: 2001:db8::1\n      asn: 65000\n")
        .replace(D1, '    gateway_mac: "02:47:4c:00:00:01"\n    bgp_peers: [r1, r6]  #!\n  - name: d2\n', 1),
        "is IPv6"),
    "duplicate_peer_address": (
        replace("      asn: 65000\n", "      asn: 65000\n    - name: r2\n      address: 198.18.0.1  #!\n      asn: 65001\n"),
        "already bgp.peers[0]"),
    "duplicate_router_id": (
        replace("    address: 198.18.0.12\n", "    address: 198.18.0.12\n    router_id: 198.18.0.11  #!\n"),
        "router id 198.18.0.11 is already used"),
}


def test_good_document_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "glb.yml"
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_bgp_config_is_rejected_at_its_line(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    text, fragment = CASES[name]
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith("#!"))
    path = tmp_path / "glb.yml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert f"glb.yml:{line}:" in err, err
