"""Fixtures for the director tests: programs compiled once, tables the tests build themselves."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from glb_agent.table.spec import Backend, Bind, TableSpec
from tests.dataplane.director_ref import Director, Table
from tests.support.netns import bpf_unavailable
from tests.support.pinlayout import pin_layout  # noqa: F401  (a fixture for the tests here)

SOURCE_IP = "198.18.0.11"
SRC_MAC = "02:47:4c:00:00:11"
GW_MAC = "02:47:4c:00:00:01"
ALL_FIELDS = ("src_addr", "dst_addr", "src_port", "dst_port")


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def _backends(*ips: str) -> tuple[Backend, ...]:
    return tuple(Backend(ipaddress.ip_address(ip)) for ip in ips)


def make_rows(n_backends: int, seed: int) -> np.ndarray:
    """Random (primary, secondary) pairs with primary != secondary: every row differs."""
    rng = np.random.default_rng(seed)
    primary = rng.integers(0, n_backends, 65536)
    secondary = (primary + rng.integers(1, max(n_backends, 2), 65536)) % n_backends
    return np.stack([primary, secondary], axis=1).astype(np.uint32)


WEB = TableSpec("web", bytes.fromhex("000102030405060708090a0b0c0d0e0f"), bytes(16),
                (Bind(_net("203.0.113.10/32"), "tcp", 80, 80), Bind(_net("203.0.113.10/32"), "tcp", 443, 443),
                 Bind(_net("2001:db8:100::10/128"), "tcp", 80, 80)),
                _backends("198.18.0.21", "198.18.0.22", "198.18.0.23", "198.18.0.24"))
DNS = TableSpec("dns", bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f"), bytes(16),
                (Bind(_net("203.0.113.53/32"), "udp", 53, 53), Bind(_net("2001:db8:100::53/128"), "udp", 53, 53)),
                _backends("198.18.0.31", "198.18.0.32"))
# A prefix that contains web's VIP (TCP, other ports): most specific bind wins, and TCP
# fragments to 203.0.113.10 cannot be attributed to one table any more.
RANGE = TableSpec("range", bytes.fromhex("5a" * 16), bytes(16),
                  (Bind(_net("203.0.113.0/28"), "tcp", 8000, 8100), Bind(_net("2001:db8:300::/64"), "udp", 5000, 5999)),
                  _backends("198.18.0.41", "198.18.0.42", "198.18.0.43"))
EMPTY = TableSpec("empty", bytes.fromhex("77" * 16), bytes(16), (Bind(_net("203.0.113.99/32"), "tcp", 80, 80),), ())


@dataclass
class Loaded:
    """A compiled program (not attached) with its maps and the reference the tests compare to."""

    program: object  # DirectorProgram; kept alive so the program stays loaded
    state: object  # DirectorState
    ref: Director
    tables: dict[str, Table]

    @property
    def fd(self) -> int:
        return self.program.prog_fd  # type: ignore[attr-defined]

    def load(self, tables: list[tuple[TableSpec, np.ndarray | None]]) -> int:
        from glb_agent.dataplane.director_maps import compile_tables

        gen = self.state.apply(compile_tables(tables, self.program.opts))  # type: ignore[attr-defined]
        self.tables = {spec.name: Table(spec, rows) for spec, rows in tables if rows is not None}
        return gen


def standard_tables() -> list[tuple[TableSpec, np.ndarray | None]]:
    return [(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2)), (RANGE, make_rows(3, 3)), (EMPTY, None)]


def _load(hash_fields: tuple[str, ...]) -> Iterator[Loaded]:
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    from glb_agent.dataplane.director import DirectorProgram, DirectorState
    from glb_agent.dataplane.director_maps import BuildOptions

    opts = BuildOptions(ipaddress.IPv4Address(SOURCE_IP), SRC_MAC, GW_MAC, hash_fields, mtu=1500)
    program = DirectorProgram(opts)
    state = DirectorState(program.map_fds, opts.max_tables, opts.max_binds)
    loaded = Loaded(program, state, Director(SOURCE_IP, SRC_MAC, GW_MAC, hash_fields), {})
    loaded.load(standard_tables())
    yield loaded


@pytest.fixture(scope="module")
def net() -> Iterator[object]:
    """Client, director and proxy namespaces on one bridge (tests/dataplane/netlab.py)."""
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    from tests.dataplane.netlab import build
    from tests.support.netns import Lab

    with Lab() as lab:
        yield build(lab)


@pytest.fixture(scope="session")
def director() -> Iterator[Loaded]:
    """Default hash (source address only), as upstream's default."""
    yield from _load(("src_addr",))


@pytest.fixture(scope="session")
def director_ports() -> Iterator[Loaded]:
    """All four hash fields: ports matter, so fragments cannot be forwarded."""
    yield from _load(ALL_FIELDS)
