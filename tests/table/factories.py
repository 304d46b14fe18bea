"""Small builders for table specs, so tests state only what they are about."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from glb_agent.table.spec import Backend, Bind, TableSpec

# /work/shared/compat: JSON sources and the .bin upstream's CLI built from them; found from
# the main checkout (/work/main) and from worktrees (/work/wt/<name>) alike.
COMPAT_DIR = next((p / "shared" / "compat" for p in Path(__file__).resolve().parents[2].parents
                   if (p / "shared" / "compat").is_dir()),
                  Path(__file__).resolve().parents[2].parent / "shared" / "compat")
SEED = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
HASH_KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
BIND = Bind(ipaddress.ip_network("203.0.113.80/32"), "tcp", 80, 80)


def compat_dir() -> Path:
    if not COMPAT_DIR.is_dir():
        pytest.skip(f"upstream compat vectors not found at {COMPAT_DIR}")
    return COMPAT_DIR


def v4(i: int) -> ipaddress.IPv4Address:
    """Distinct addresses in the benchmarking range 198.18.0.0/15."""
    return ipaddress.IPv4Address(int(ipaddress.IPv4Address("198.18.0.0")) + i)


def v6(i: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8::")) + i)


def spec(
    backends: list[Backend] | int,
    *,
    seed: bytes = SEED,
    name: str = "svc",
) -> TableSpec:
    """A table with ``backends`` (or that many active, healthy IPv4 ones)."""
    if isinstance(backends, int):
        backends = [Backend(v4(i)) for i in range(backends)]
    return TableSpec(name, HASH_KEY, seed, (BIND,), tuple(backends))
