"""Bad BGP settings are refused by ``glb-agent validate`` with exit 2 and the exact line.

A ``#!`` marker ends the line each error must point at, so expectations cannot drift.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glb_agent.cli import main
from tests.bgp.bgplab import CONFIG

GOOD = CONFIG.format(hold=9, bfd="true", security="")


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
        replace('    address6: "2001:db8:18::11"\n', "")
        .replace(D1, '    gateway_mac: "02:47:4c:00:00:01"\n    bgp_peers: [r1, r1v6]  #!\n  - name: d2\n', 1),
        "no address6 to open the session from"),
    # bgp_peers unset means every peer, including the IPv6 one: reported at the director.
    "ipv6_peer_by_default_from_ipv4_director": (
        replace('  - name: d2\n    address: 198.18.0.12\n    address6: "2001:db8:18::12"\n',
                '  - name: d2  #!\n    address: 198.18.0.12\n'),
        "director d2 has no address6"),
    "address6_not_ipv6": (replace('    address6: "2001:db8:18::11"\n', "    address6: 198.18.0.111  #!\n"),
                          "IPv6"),
    "address6_used_twice": (replace('    address6: "2001:db8:18::12"\n', '    address6: "2001:db8:18::11"  #!\n'),
                            "already used by directors[0]"),
    # Reported at the VIP, like an IPv4 VIP that is a director's address.
    "address6_is_a_vip": (replace('    address6: "2001:db8:18::12"\n', '    address6: "2001:db8:100::10"\n')
                          .replace('"2001:db8:100::10"]\n', '"2001:db8:100::10"]  #!\n'),
                          "is the address of a director"),
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


def _validate_marked(text: str, tmp_path: Path) -> tuple[int, int]:
    """`glb-agent validate` on ``text``; returns (exit code, the line marked with ``#!``)."""
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith("#!"))
    path = tmp_path / "glb.yml"
    path.write_text(text)
    return main(["validate", str(path)]), line


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_bgp_config_is_rejected_at_its_line(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    text, fragment = CASES[name]
    rc, line = _validate_marked(text, tmp_path)
    assert rc == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert f"glb.yml:{line}:" in err, err


WARNINGS: dict[str, tuple[str, str]] = {
    # No IPv6 session anywhere: the IPv6 VIP would never be announced.
    "no_ipv6_peer": (
        GOOD.replace('    - name: r1v6\n      address: "2001:db8:18::1"\n      asn: 65000\n', "")
        .replace('"2001:db8:100::10"]\n', '"2001:db8:100::10"]  #!\n'),
        "will not be announced by BGP: no bgp.peers entry is IPv6"),
    "no_director_has_address6": (
        GOOD.replace('    address6: "2001:db8:18::11"\n', "").replace('    address6: "2001:db8:18::12"\n', "")
        .replace('    gateway_mac: "02:47:4c:00:00:01"\n', '    gateway_mac: "02:47:4c:00:00:01"\n    bgp_peers: [r1]\n')
        .replace('"2001:db8:100::10"]\n', '"2001:db8:100::10"]  #!\n'),
        "no director has an address6 and an IPv6 peer"),
    # A director left out of an IPv6 rollout: legal, it keeps carrying IPv4.
    "one_director_without_address6": (
        GOOD.replace('  - name: d2\n    address: 198.18.0.12\n    address6: "2001:db8:18::12"\n',
                     '  - name: d2  #!\n    address: 198.18.0.12\n    bgp_peers: [r1]\n'),
        "director d2 has no address6: it announces only IPv4 prefixes, IPv6 VIPs reach only d1"),
    "address6_without_ipv6_peer": (
        GOOD.replace('    address6: "2001:db8:18::12"\n', '    address6: "2001:db8:18::12"  #!\n    bgp_peers: [r1]\n'),
        "none of its BGP peers is IPv6"),
}


@pytest.mark.parametrize("name", sorted(WARNINGS))
def test_ipv6_prefixes_nobody_announces_are_warnings_and_strict_refuses_them(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, fragment = WARNINGS[name]
    rc, line = _validate_marked(text, tmp_path)
    assert rc == 0
    err = capsys.readouterr().err
    assert f"glb.yml:{line}: " in err and ": warning: " in err and fragment in err, err
    assert main(["validate", "--strict", str(tmp_path / "glb.yml")]) == 2
    assert fragment in capsys.readouterr().err


def test_good_document_has_no_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "glb.yml"
    path.write_text(GOOD)
    assert main(["validate", "--strict", str(path)]) == 0
    assert capsys.readouterr().err == ""


R1 = "    - name: r1\n      address: 198.18.0.1\n      asn: 65000\n"
# BFD and session-security rules: (text, message, password files to create next to glb.yml).
SECURITY_CASES: dict[str, tuple[str, str, dict[str, str]]] = {
    "bfd_interval_too_fast_for_routers": (
        replace("  bfd: {enabled: true}\n", "  bfd: {enabled: true, interval_ms: 20}  #!\n"),
        "greater than or equal to 50", {}),
    "bfd_multiplier_one": (
        replace("  bfd: {enabled: true}\n", "  bfd: {enabled: true, multiplier: 1}  #!\n"),
        "greater than or equal to 2", {}),
    "bfd_not_faster_than_hold_time": (
        replace("  bfd: {enabled: true}\n", "  bfd: {enabled: true, interval_ms: 3000}  #!\n"),
        "not shorter than hold_time 9 s", {}),
    "bfd_timers_differ_on_one_director": (
        replace('      address: "2001:db8:18::1"\n      asn: 65000\n',
                '      address: "2001:db8:18::1"\n      asn: 65000\n      bfd: {interval_ms: 200}  #!\n'),
        "with different timers", {}),
    "password_file_missing": (
        replace(R1, R1 + "      password_file: nothere.md5  #!\n"), "cannot read", {}),
    "password_with_a_space": (
        replace(R1, R1 + "      password_file: bgp.md5  #!\n"), "may contain only", {"bgp.md5": "two words\n"}),
    "password_too_long": (
        replace(R1, R1 + "      password_file: bgp.md5  #!\n"), "at most 80", {"bgp.md5": "x" * 81}),
    "password_file_and_env": (
        replace(R1, "    - name: r1  #!\n      address: 198.18.0.1\n      asn: 65000\n"
                    "      password_file: bgp.md5\n      password_env: GLB_R1\n"),
        "not both", {"bgp.md5": "secret-1\n"}),
    "password_env_not_a_name": (
        replace(R1, R1 + "      password_env: 1-bad  #!\n"), "not an environment variable name", {}),
}


@pytest.mark.parametrize("name", sorted(SECURITY_CASES))
def test_bad_bfd_or_password_is_rejected_at_its_line(name: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    text, fragment, files = SECURITY_CASES[name]
    for fname, content in files.items():
        (tmp_path / fname).write_text(content)
        (tmp_path / fname).chmod(0o600)
    rc, line = _validate_marked(text, tmp_path)
    assert rc == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert f"glb.yml:{line}:" in err, err


def test_password_file_readable_by_others_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bgp.md5").write_text("secret-1\n")
    (tmp_path / "bgp.md5").chmod(0o644)
    rc, line = _validate_marked(replace(R1, R1 + "      password_file: bgp.md5  #!\n"), tmp_path)
    assert rc == 0
    err = capsys.readouterr().err
    assert f"glb.yml:{line}: " in err and "chmod 600" in err, err
    (tmp_path / "bgp.md5").chmod(0o600)
    assert main(["validate", "--strict", str(tmp_path / "glb.yml")]) == 0
