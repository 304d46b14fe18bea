"""Each broken YAML must fail validation with exit code 2 and name the exact line.

A case is a full document; the line carrying the ``#!`` marker is where the error must
point, so the expected line number can never drift from the text.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from glb_agent.cli import main

GOOD = """\
fleet:
  name: t
  secret: 0123456789abcdef-secret
bgp:
  local_asn: 65100
  peers:
    - {name: r1, address: 198.18.0.1, asn: 65000}
directors:
  - name: d1
    address: 198.18.0.11
    interface: eth0
    gateway_mac: "02:00:00:00:00:01"
proxies:
  - {name: p1, address: 198.18.0.21, interface: eth0}
  - {name: p2, address: 198.18.0.22, interface: eth0}
services:
  - name: web
    vips: [203.0.113.10]
    ports: [80]
    backends:
      - address: 198.18.0.21
      - address: 198.18.0.22
"""


def replace(old: str, new: str, base: str = GOOD) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


CASES: dict[str, tuple[str, str, str]] = {
    # name: (document, path in the message, message fragment)
    "unknown_top_level_key": (GOOD + "servics: []  #!\n", "servics", "unknown key 'servics'"),
    "typo_suggests_field": (
        replace("    ports: [80]\n", "    portz: [80]  #!\n    ports: [80]\n"),
        "services[0].portz", "did you mean 'ports'"),
    "duplicate_yaml_key": (
        replace("    ports: [80]\n", "    ports: [80]\n    ports: [81]  #!\n"),
        "", "duplicate key"),
    "yaml_syntax_error": (
        replace("    ports: [80]\n", "    ports: [80\n  bad: ]]  #!\n"), "", "YAML syntax"),
    "port_out_of_range": (
        replace("    ports: [80]\n", "    ports: [70000]  #!\n"),
        "services[0].ports[0]", "out of range"),
    "port_range_reversed": (
        replace("    ports: [80]\n", '    ports: ["90-80"]  #!\n'),
        "services[0].ports[0]", "ends before it starts"),
    "ports_overlap": (
        replace("    ports: [80]\n", '    ports:\n      - "80-90"\n      - 85  #!\n'),
        "services[0].ports[1]", "overlaps"),
    "bad_vip": (
        replace("    vips: [203.0.113.10]\n", "    vips: [203.0.113.300]  #!\n"),
        "services[0].vips[0]", "not an IPv4 or IPv6 address"),
    "duplicate_vip": (
        replace("    vips: [203.0.113.10]\n", "    vips:\n      - 203.0.113.10\n      - 203.0.113.10  #!\n"),
        "services[0].vips[1]", "duplicate VIP"),
    "cidr_with_host_bits": (
        replace("    ports: [80]\n", "    ports: [80]\n    cidrs: [203.0.113.5/24]  #!\n"),
        "services[0].cidrs[0]", "host bits set"),
    "backend_twice_in_two_states": (
        replace("      - address: 198.18.0.22\n",
                "      - address: 198.18.0.22\n      - address: 198.18.0.21  #!\n        state: draining\n"),
        "services[0].backends[2].address", "listed twice: as active at line"),
    "backend_bad_state": (
        replace("      - address: 198.18.0.22\n", "      - address: 198.18.0.22\n        state: retired  #!\n"),
        "services[0].backends[1].state", "'active', 'draining', 'filling' or 'inactive'"),
    "backend_not_a_proxy": (
        replace("      - address: 198.18.0.22\n", "      - address: 198.18.0.99  #!\n"),
        "services[0].backends[1].address", "not the address of any entry in proxies"),
    "alt_hash_fields_unknown_field": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  alt_hash_fields: [src_adr]  #!\n"),
        "fleet.alt_hash_fields[0]", "src_addr"),
    "alt_hash_fields_listed_twice": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  hash_fields: [src_addr, src_port]\n"
                "  alt_hash_fields:\n    - src_addr\n    - src_addr  #!\n"),
        "fleet.alt_hash_fields[1]", "listed twice"),
    "alt_hash_fields_same_as_hash_fields": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  alt_hash_fields: [src_addr]  #!\n"),
        "fleet.alt_hash_fields", "nothing to migrate"),
    "alt_hash_fields_hop_list_too_long": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  hash_fields: [src_addr, src_port]\n"
                "  alt_hash_fields: [src_addr]\n  table_candidates: 5  #!\n"),
        "fleet.table_candidates", "at most 8"),
    "table_candidates_with_upstream_rows": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  table_semantics: upstream\n  table_candidates: 4  #!\n"),
        "fleet.table_candidates", "upstream rows hold exactly two"),
    "table_candidates_out_of_range": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  table_candidates: 9  #!\n"),
        "fleet.table_candidates", "less than or equal to 8"),
    "table_semantics_unknown": (
        replace("  secret: 0123456789abcdef-secret\n",
                "  secret: 0123456789abcdef-secret\n  table_semantics: glb  #!\n"),
        "fleet.table_semantics", "'candidates' or 'upstream'"),
    "all_backends_inactive": (
        replace("    backends:\n      - address: 198.18.0.21\n      - address: 198.18.0.22\n",
                "    backends:  #!\n      - {address: 198.18.0.21, state: inactive}\n"
                "      - {address: 198.18.0.22, state: inactive}\n"),
        "services[0].backends", "every backend is inactive"),
    "ipv6_backend": (
        replace("      - address: 198.18.0.22\n", '      - address: "2001:db8::22"  #!\n'),
        "services[0].backends[1].address", "valid IPv4 address"),
    "missing_hash_key_without_secret": (
        replace("  secret: 0123456789abcdef-secret\n", "").replace("  - name: web\n", "  - name: web  #!\n"),
        "services[0]", "no hash_key and no fleet.secret"),
    "hash_key_wrong_length": (
        replace("    ports: [80]\n", "    ports: [80]\n    hash_key: abcd  #!\n"),
        "services[0].hash_key", "32 hexadecimal digits"),
    "bad_mac": (
        replace('    gateway_mac: "02:00:00:00:00:01"\n', '    gateway_mac: "02:00:00:00:01"  #!\n'),
        "directors[0].gateway_mac", "not a MAC address"),
    "multicast_mac": (
        replace('    gateway_mac: "02:00:00:00:00:01"\n', '    gateway_mac: "01:00:5e:00:00:01"  #!\n'),
        "directors[0].gateway_mac", "multicast"),
    "gateway_and_next_hop": (
        replace("  - name: d1\n", "  - name: d1  #!\n").replace(
            '    gateway_mac: "02:00:00:00:00:01"\n',
            '    gateway_mac: "02:00:00:00:00:01"\n    next_hop: 198.18.0.1\n'),
        "directors[0]", "exactly one of gateway_mac or next_hop"),
    "duplicate_director_name": (
        replace("proxies:\n", "  - name: d1  #!\n    address: 198.18.0.12\n    interface: eth0\n"
                "    gateway_mac: \"02:00:00:00:00:01\"\nproxies:\n"),
        "directors[1].name", "duplicate name d1"),
    "proxy_reuses_director_address": (
        replace("  - {name: p2, address: 198.18.0.22, interface: eth0}\n",
                "  - {name: p2, address: 198.18.0.11, interface: eth0}  #!\n"),
        "proxies[1].address", "already used by directors[0]"),
    "asn_out_of_range": (
        replace("  local_asn: 65100\n", "  local_asn: 4294967296  #!\n"),
        "bgp.local_asn", "out of range or reserved"),
    "asn_reserved_as_trans": (
        replace("    - {name: r1, address: 198.18.0.1, asn: 65000}\n",
                "    - {name: r1, address: 198.18.0.1, asn: 23456}  #!\n"),
        "bgp.peers[0].asn", "reserved"),
    "hold_time_too_short": (
        replace("  local_asn: 65100\n", "  local_asn: 65100\n  hold_time: 2  #!\n"),
        "bgp.hold_time", "0 or 3-65535"),
    "unknown_bgp_peer": (
        replace("    interface: eth0\n    gateway_mac", "    interface: eth0\n    bgp_peers: [r9]  #!\n"
                "    gateway_mac"),
        "directors[0].bgp_peers[0]", "unknown BGP peer 'r9'"),
    "unknown_director_for_proxy": (
        replace("  - {name: p2, address: 198.18.0.22, interface: eth0}\n",
                "  - {name: p2, address: 198.18.0.22, interface: eth0, directors: [dx]}  #!\n"),
        "proxies[1].directors[0]", "unknown director 'dx'"),
    "bind_claimed_by_two_services": (
        GOOD + "  - name: web2\n    vips: [203.0.113.10]  #!\n    ports: [80]\n"
               "    backends: [{address: 198.18.0.21}]\n",
        "services[1].vips[0]", "already served by services[0]"),
    "missing_required_section": (
        "fleet:  #!\n  name: t\n  secret: 0123456789abcdef-secret\n", "bgp", "required key is missing"),
    "missing_required_field_points_at_parent": (
        replace("  - {name: p2, address: 198.18.0.22, interface: eth0}\n",
                "  - {name: p2, address: 198.18.0.22}  #!\n"),
        "proxies[1].interface", "required key is missing"),
    "healthcheck_typo_in_backend": (
        replace("      - address: 198.18.0.22\n",
                "      - address: 198.18.0.22\n        healthcheck: {htp: {port: 80}}  #!\n"),
        "services[0].backends[1].healthcheck.htp", "did you mean 'http'"),
    "boolean_as_port": (
        replace("    ports: [80]\n", "    ports: [true]  #!\n"),
        "services[0].ports[0]", "boolean"),
    "bad_service_name": (
        replace("  - name: web\n", "  - name: Web Service  #!\n"), "services[0].name", "not a valid name"),
    "empty_file": ("#!\n", "", "file is empty"),
}


def marker_line(doc: str) -> int:
    lines = [i for i, line in enumerate(doc.splitlines(), 1) if "#!" in line]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


def test_good_document_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "glb.yml"
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_yaml_names_file_line_and_path(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, path, fragment = CASES[case]
    target = tmp_path / "glb.yml"
    target.write_text(textwrap.dedent(doc))
    assert main(["validate", str(target)]) == 2
    err = capsys.readouterr().err
    expected_prefix = f"{target}:{marker_line(doc)}: " + (f"{path}: " if path else "")
    matching = [line for line in err.splitlines() if line.startswith(expected_prefix)]
    assert matching, f"no error line starts with {expected_prefix!r}:\n{err}"
    assert any(fragment in line for line in matching), f"{fragment!r} not in:\n{err}"


def test_missing_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_json_output_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    target = tmp_path / "glb.yml"
    target.write_text(replace("    ports: [80]\n", "    ports: [0, 70000]\n"))
    assert main(["validate", "--json", str(target)]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and len(result["errors"]) == 2


def test_lab_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    lab = Path(__file__).resolve().parents[2] / "inventories/lab/group_vars/all/glb.yml"
    assert main(["validate", str(lab)]) == 0
