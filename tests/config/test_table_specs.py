"""The YAML -> forwarding-table-spec mapping every director must compute identically."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from glb_agent.config import load_config, load_table_specs
from glb_agent.config.tables import derive_key, table_specs
from tests.config.test_broken_yaml import GOOD, replace


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "glb.yml"
    path.write_text(text)
    return path


def test_derived_keys_depend_only_on_secret_and_service_name(tmp_path: Path) -> None:
    a = load_table_specs(write(tmp_path, GOOD))[0]
    renamed_fleet = replace("  name: t\n", "  name: other-fleet\n")
    b = load_table_specs(write(tmp_path, renamed_fleet))[0]
    assert (a.hash_key, a.seed) == (b.hash_key, b.seed)
    assert a.hash_key != a.seed and len(a.hash_key) == len(a.seed) == 16
    assert a.seed == derive_key(b"0123456789abcdef-secret", "web", "seed")
    other_secret = replace("secret: 0123456789abcdef-secret", "secret: fedcba9876543210-secret")
    c = load_table_specs(write(tmp_path, other_secret))[0]
    assert c.seed != a.seed


def test_explicit_keys_win_over_the_secret(tmp_path: Path) -> None:
    text = replace("    ports: [80]\n", "    ports: [80]\n    hash_key: 000102030405060708090A0B0C0D0E0F\n"
                   "    seed: ffeeddccbbaa99887766554433221100\n")
    spec = load_table_specs(write(tmp_path, text))[0]
    assert spec.hash_key == bytes(range(16))
    assert spec.seed == bytes.fromhex("ffeeddccbbaa99887766554433221100")


def test_binds_are_every_address_times_every_port_range(tmp_path: Path) -> None:
    text = replace("    vips: [203.0.113.10]\n    ports: [80]\n",
                   '    vips: [203.0.113.10, "2001:db8::10"]\n    ports: [80, "8000-8100"]\n'
                   "    cidrs: [198.51.100.0/28]\n")
    binds = load_table_specs(write(tmp_path, text))[0].binds
    assert len(binds) == 6
    assert {(str(b.network), b.port_start, b.port_end) for b in binds} >= {
        ("203.0.113.10/32", 80, 80), ("2001:db8::10/128", 8000, 8100), ("198.51.100.0/28", 80, 80)}


def test_backend_order_state_and_health_view(tmp_path: Path) -> None:
    text = replace("      - address: 198.18.0.22\n", "      - address: 198.18.0.22\n        state: draining\n")
    loaded = load_config(write(tmp_path, text))
    spec = table_specs(loaded, health={("web", ipaddress.IPv4Address("198.18.0.21")): False})[0]
    assert [str(b.ip) for b in spec.backends] == ["198.18.0.21", "198.18.0.22"]
    assert [b.state for b in spec.backends] == ["active", "draining"]
    assert [b.healthy for b in spec.backends] == [False, True]


def test_backend_healthcheck_override_merges_with_service(tmp_path: Path) -> None:
    text = replace("    ports: [80]\n", "    ports: [80]\n    healthcheck: {http: {port: 8080}, fall: 5}\n")
    text = text.replace("      - address: 198.18.0.22\n",
                        "      - address: 198.18.0.22\n        healthcheck: {fall: 2, tcp: {port: 22}}\n")
    svc = load_config(write(tmp_path, text)).config.services[0]
    first, second = (svc.healthcheck_for(b) for b in svc.backends)
    assert (first.fall, first.http.port, first.tcp) == (5, 8080, None)
    assert (second.fall, second.http.port, second.tcp.port) == (2, 8080, 22)
