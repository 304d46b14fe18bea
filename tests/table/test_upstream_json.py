"""Upstream's forwarding-table JSON: faithful reading, located errors, stable output."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from pathlib import Path

import pytest

from glb_agent.errors import InputError
from glb_agent.table import upstream_json
from glb_agent.table.spec import Backend, Bind

from .factories import compat_dir

KEY = "00112233445566778899aabbccddeeff"
GOOD = {
    "tables": [
        {
            "name": "web",
            "hash_key": KEY,
            "seed": KEY[::-1],
            "binds": [
                {"ip": "203.0.113.10", "proto": "tcp", "port": 80},
                {"ip": "2001:db8::/32", "proto": "udp", "port_start": 1000, "port_end": 2000},
            ],
            "backends": [
                {
                    "ip": "198.18.0.1",
                    "state": "active",
                    "healthy": True,
                    "healthchecks": {"http": 80, "gue": 19523},
                },
                {"ip": "2001:db8::2", "state": "draining", "healthy": False},
            ],
        },
        {"hash_key": KEY, "seed": KEY, "binds": [], "backends": [{"ip": "198.18.0.9", "state": "filling"}]},
    ]
}


def good() -> dict:
    return copy.deepcopy(GOOD)


def test_reads_every_field() -> None:
    web, anon = upstream_json.loads(json.dumps(GOOD))
    assert web.name == "web" and anon.name == ""
    assert web.hash_key == bytes.fromhex(KEY) and web.seed == bytes.fromhex(KEY[::-1])
    assert web.binds == (
        Bind(ipaddress.ip_network("203.0.113.10/32"), "tcp", 80, 80),
        Bind(ipaddress.ip_network("2001:db8::/32"), "udp", 1000, 2000),
    )
    assert web.backends == (
        Backend(ipaddress.ip_address("198.18.0.1"), "active", True, (("http", 80), ("gue", 19523))),
        Backend(ipaddress.ip_address("2001:db8::2"), "draining", False),
    )


def test_missing_healthy_means_unhealthy_as_upstream_reads_it() -> None:
    _, anon = upstream_json.loads(json.dumps(GOOD))
    assert anon.backends[0].healthy is False


def test_bind_host_bits_are_kept() -> None:
    doc = good()
    doc["tables"][0]["binds"][0]["ip"] = "10.0.0.7/24"
    (bind, _) = upstream_json.loads(json.dumps(doc))[0].binds
    assert bind.network == ipaddress.ip_network("10.0.0.0/24")
    assert bind.stored_address == ipaddress.ip_address("10.0.0.7")
    assert '"ip": "10.0.0.7/24"' in upstream_json.dumps(upstream_json.loads(json.dumps(doc)))


@pytest.mark.parametrize("name", ["seed_example", "fleet32", "mixed_states"])
def test_compat_sources_round_trip_through_our_writer(name: str) -> None:
    specs = upstream_json.load(compat_dir() / f"{name}.json")
    text = upstream_json.dumps(specs)
    assert upstream_json.loads(text) == specs
    assert upstream_json.dumps(upstream_json.loads(text)) == text


def test_output_is_deterministic_and_atomic(tmp_path: Path) -> None:
    specs = upstream_json.loads(json.dumps(GOOD))
    out = tmp_path / "ft.json"
    assert upstream_json.write(out, specs) is True
    first = out.read_bytes()
    assert upstream_json.write(out, upstream_json.loads(first)) is False
    assert out.read_bytes() == first
    assert out.stat().st_mode & 0o777 == 0o644
    assert json.loads(first)["tables"][1].keys() == {"hash_key", "seed", "binds", "backends"}


def test_writer_refuses_specs_without_a_seed() -> None:
    spec = upstream_json.loads(json.dumps(GOOD))[0]
    with pytest.raises(InputError, match="seed must both be 16 bytes"):
        upstream_json.dumps([type(spec)(spec.name, spec.hash_key, b"", spec.binds, spec.backends)])


def _set(path: list, value) -> dict:
    doc = good()
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "where", "message"),
    [
        (["tables"], {}, "tables", "must be an array"),
        (["tables", 0, "hash_key"], "abc", "tables[0].hash_key", "32 hex digits"),
        (["tables", 1, "seed"], "zz" * 16, "tables[1].seed", "32 hex digits"),
        (["tables", 0, "seed"], _DELETE, "tables[0].seed", "missing"),
        (["tables", 0, "backends", 1, "state"], "up", "tables[0].backends[1].state", "must be one of"),
        (["tables", 0, "backends", 1, "state"], 1, "tables[0].backends[1].state", "must be a string"),
        (
            ["tables", 0, "backends", 1, "ip"],
            "2001:db8::zz",
            "tables[0].backends[1].ip",
            "not an IPv4 or IPv6",
        ),
        (
            ["tables", 0, "backends", 1, "ip"],
            "198.18.0.1",
            "tables[0].backends[1].ip",
            "duplicates backends[0]",
        ),
        (["tables", 0, "backends", 0, "healthy"], "yes", "tables[0].backends[0].healthy", "true or false"),
        (["tables", 0, "backends", 0, "healty"], True, "tables[0].backends[0].healty", "unknown key"),
        (
            ["tables", 0, "backends", 0, "healthchecks", "gue"],
            70000,
            "tables[0].backends[0].healthchecks.gue",
            "port 0..65535",
        ),
        (["tables", 0, "binds", 0, "port"], True, "tables[0].binds[0].port", "port 0..65535"),
        (["tables", 0, "binds", 0, "proto"], "sctp", "tables[0].binds[0].proto", "tcp or udp"),
        (["tables", 0, "binds", 0, "ip"], "10.0.0.1/33", "tables[0].binds[0].ip", "prefix length"),
        (["tables", 0, "binds", 1, "port_end"], _DELETE, "tables[0].binds[1].port_end", "missing"),
        (["tables", 0, "binds", 1, "port_end"], 999, "tables[0].binds[1]", "above port_end"),
        (["tables", 0, "binds", 0, "port_start"], 1, "tables[0].binds[0]", "not both"),
        (
            ["tables", 1, "binds"],
            [{"ip": "10.0.0.1", "proto": "tcp", "port": 1}] * 257,
            "tables[1].binds",
            "257 binds",
        ),
        (["tables", 1, "backends"], None, "tables[1].backends", "must be an array, got null"),
    ],
)
def test_bad_input_names_file_and_json_path(path, value, where, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)) as exc:
        upstream_json.loads(json.dumps(_set(path, value)), "ft.json")
    assert str(exc.value).startswith(f"ft.json: {where}: ")


def test_syntax_errors_give_line_and_column() -> None:
    with pytest.raises(InputError, match=r"^ft.json:2:\d+: invalid JSON"):
        upstream_json.loads('{"tables": [\n  {,]}', "ft.json")


def test_top_level_must_be_an_object_with_tables() -> None:
    with pytest.raises(InputError, match=r"^ft\.json: must be an object"):
        upstream_json.loads("[]", "ft.json")
    with pytest.raises(InputError, match=r"^ft\.json: tables: missing"):
        upstream_json.loads("{}", "ft.json")


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        upstream_json.load(tmp_path / "missing.json")
