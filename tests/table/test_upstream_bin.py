"""forwarding_table.bin: byte-identical to upstream's CLI, round trips, and located errors."""

from __future__ import annotations

import ipaddress
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from glb_agent.errors import InputError
from glb_agent.table import upstream_bin, upstream_json
from glb_agent.table.rendezvous import build_all, build_rows
from glb_agent.table.spec import TABLE_ROWS, Backend, Bind

from .factories import compat_dir, spec, v4, v6

COMPAT_NAMES = ["seed_example", "fleet32", "mixed_states"]
HEADER = 24
TABLE_BYTES = 4 + 256 * 24 + 4 + 256 * 28 + 16 + TABLE_ROWS * 8


@pytest.mark.parametrize("name", COMPAT_NAMES)
def test_output_is_byte_identical_to_upstream_cli(name: str) -> None:
    src = compat_dir() / f"{name}.json"
    specs = upstream_json.load(src)
    assert upstream_bin.encode(specs, build_all(specs)) == src.with_suffix(".bin").read_bytes()


@pytest.mark.parametrize("name", COMPAT_NAMES)
def test_reading_upstream_bin_recovers_specs_and_rows(name: str) -> None:
    src = compat_dir() / f"{name}.json"
    specs = upstream_json.load(src)
    f = upstream_bin.read(src.with_suffix(".bin"))
    assert f.upstream_compatible and f.max_num_backends == 256
    assert len(f.tables) == len(specs)
    for t, s, rows in zip(f.tables, specs, build_all(specs), strict=True):
        assert np.array_equal(t.rows, rows)
        assert t.spec.hash_key == s.hash_key and t.spec.seed == b""
        assert t.spec.binds == s.binds
        assert [(b.ip, b.state, b.healthy) for b in t.spec.backends] == [
            (b.ip, b.state, b.healthy) for b in s.backends
        ]


def test_bind_address_keeps_host_bits_like_upstream() -> None:
    specs = upstream_json.loads(
        '{"tables": [{"hash_key": "00112233445566778899aabbccddeeff", "seed": "00112233445566778899aabbccddeeff",'
        ' "binds": [{"ip": "fdb4:98ce:52d4::42/64", "proto": "udp", "port_start": 1, "port_end": 2}],'
        ' "backends": [{"ip": "198.18.0.1", "state": "active", "healthy": true}]}]}'
    )
    data = upstream_bin.encode(specs, build_all(specs))
    bind_at = HEADER + 4 + 256 * 24 + 4
    family, addr, bits, start, end, proto, _ = struct.unpack_from("<I16sHHHBB", data, bind_at)
    assert (family, bits, start, end, proto) == (2, 64, 1, 2, 17)
    assert ipaddress.IPv6Address(addr) == ipaddress.IPv6Address("fdb4:98ce:52d4::42")


def test_round_trip_through_bytes_is_exact() -> None:
    table = spec([Backend(v4(1)), Backend(v6(2), "draining", False), Backend(v4(3), "filling")])
    rows = build_rows(table)
    data = upstream_bin.encode([table], [rows])
    back = upstream_bin.decode(data)
    assert upstream_bin.encode([t.spec for t in back.tables], [t.rows for t in back.tables]) == data


def test_more_than_256_backends_grows_to_the_next_power_of_two() -> None:
    big, small = spec(300), spec(3)
    data = upstream_bin.encode([big, small], build_all([big, small]))
    f = upstream_bin.decode(data)
    assert f.max_num_backends == 512 and not f.upstream_compatible
    assert len(data) == HEADER + 2 * (4 + 512 * 24 + 4 + 256 * 28 + 16 + TABLE_ROWS * 8)
    assert [len(t.spec.backends) for t in f.tables] == [300, 3]


def test_write_is_atomic_0644_and_skips_identical_content(tmp_path: Path) -> None:
    table = spec(4)
    out = tmp_path / "forwarding_table.bin"
    old_umask = os.umask(0o077)  # the mode must not depend on the caller's umask
    try:
        assert upstream_bin.write(out, [table], [build_rows(table)]) is True
    finally:
        os.umask(old_umask)
    assert out.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["forwarding_table.bin"]  # no temp file left behind
    inode = out.stat().st_ino
    assert upstream_bin.write(out, [table], [build_rows(table)]) is False
    assert out.stat().st_ino == inode
    changed = spec(5)
    assert upstream_bin.write(out, [changed], [build_rows(changed)]) is True
    assert out.stat().st_ino != inode  # replaced by rename, never rewritten in place


def test_too_many_binds_is_an_input_error() -> None:
    bind = Bind(ipaddress.ip_network("203.0.113.1/32"), "tcp", 80, 80)
    table = spec(2)
    table = type(table)(table.name, table.hash_key, table.seed, (bind,) * 257, table.backends)
    with pytest.raises(InputError, match="257 binds"):
        upstream_bin.encode([table], [build_rows(table)])


@pytest.fixture(scope="module")
def good_bytes() -> bytes:
    table = spec([Backend(v4(1)), Backend(v4(2))])
    return upstream_bin.encode([table], [build_rows(table)])


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


ROWS_AT = HEADER + 4 + 256 * 24 + 4 + 256 * 28 + 16


@pytest.mark.parametrize(
    ("mutate", "offset", "message"),
    [
        (lambda d: b"XLBD" + d[4:], 0, "magic"),
        (lambda d: _patch(d, 4, "<I", 3), 4, "format version 3"),
        (lambda d: _patch(d, 12, "<I", 1024), 12, "table_entries"),
        (lambda d: d[:-1], TABLE_BYTES + HEADER - 1, "bytes"),
        (lambda d: d[:10], 10, "shorter than the 24-byte header"),
        (lambda d: d + b"\0", TABLE_BYTES + HEADER, "bytes"),
        (lambda d: _patch(d, HEADER, "<I", 300), HEADER, "num_backends 300"),
        (lambda d: _patch(d, HEADER + 4, "<I", 7), HEADER + 4, "address family"),
        (lambda d: _patch(d, HEADER + 4 + 20, "<H", 5), HEADER + 4 + 20, "state 5"),
        (lambda d: _patch(d, HEADER + 4 + 24 + 22, "<H", 9), HEADER + 4 + 24 + 22, "health 9"),
        (lambda d: _patch(d, ROWS_AT + 8 * 77 + 4, "<I", 2), ROWS_AT + 8 * 77 + 4, "row 77"),
    ],
    ids=[
        "magic",
        "version",
        "entries",
        "truncated",
        "no-header",
        "trailing",
        "num-backends",
        "family",
        "state",
        "health",
        "row-index",
    ],
)
def test_corrupt_files_fail_with_name_and_offset(
    good_bytes: bytes, mutate, offset: int, message: str
) -> None:
    with pytest.raises(InputError, match=message) as exc:
        upstream_bin.decode(mutate(good_bytes), "ft.bin")
    assert str(exc.value).startswith(f"ft.bin: byte {offset}:")


def test_unused_bind_protocol_and_prefix_are_checked(good_bytes: bytes) -> None:
    bind_at = HEADER + 4 + 256 * 24 + 4
    bad_proto = _patch(good_bytes, bind_at + 26, "<B", 1)
    with pytest.raises(InputError, match="protocol 1"):
        upstream_bin.decode(bad_proto, "ft.bin")
    bad_bits = _patch(good_bytes, bind_at + 20, "<H", 33)
    with pytest.raises(InputError, match=f"byte {bind_at + 20}: bind 0 prefix length 33"):
        upstream_bin.decode(bad_bits, "ft.bin")


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        upstream_bin.read(tmp_path / "nope.bin")
