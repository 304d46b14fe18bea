"""The director loader's pure-Python half: validation, bind packing, slots, compile flags.

No root needed. Everything that must be refused is refused before any map is touched
(``compile_tables`` only returns data), which is what makes ``update_tables`` all-or-nothing.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from glb_agent.dataplane.bpfcore.maps import decode_meta, encode_meta
from glb_agent.dataplane.director import DirectorSettings, _assign_slots
from glb_agent.dataplane.director_maps import (
    BIND4,
    BIND6,
    BIND_FRAG_OK,
    BuildOptions,
    compile_tables,
    pack_binds,
    sip_prefix,
)
from glb_agent.errors import InputError
from glb_agent.table.siphash import round_head, round_tail, siphash24_int
from glb_agent.table.spec import Backend, Bind
from tests.dataplane.conftest import DNS, EMPTY, RANGE, WEB, make_rows
from tests.dataplane.director_ref import ones_complement_checksum

OPTS = BuildOptions(ipaddress.IPv4Address("198.18.0.11"), "02:47:4c:00:00:11", "02:47:4c:00:00:01")


def test_layouts_match_the_c_structs() -> None:
    # director_defs.h asserts the same sizes with _Static_assert.
    assert (BIND4.size, BIND6.size) == (48, 72)


@pytest.mark.parametrize("msg", [b"", bytes([198, 51, 100, 7]), bytes(range(36)), bytes(range(8))])
def test_sip_prefix_finishes_to_siphash(msg: bytes) -> None:
    # Finish SipHash-2-4 from the precomputed state the way bpf/include/glb_siphash.h
    # does (first compression resumes after its v0/v1 line) and compare with the reference.
    key = bytes(range(100, 116))

    def rnd(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
        return round_tail(*round_head(v0, v1), v2, v3)

    padded = msg + bytes(7 - len(msg) % 8) + bytes([len(msg) & 0xFF])
    v = list(sip_prefix(key))
    for i in range(0, len(padded), 8):
        m = int.from_bytes(padded[i:i + 8], "little")
        v[3] ^= m
        v = list(round_tail(*v) if i == 0 else rnd(*v))
        v = list(rnd(*v))
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        v = list(rnd(*v))
    assert v[0] ^ v[1] ^ v[2] ^ v[3] == siphash24_int(key, msg)


def test_outer_checksum_constant_gives_valid_headers() -> None:
    flags = dict(f[2:].split("=", 1) for f in OPTS.cflags(None) if f.startswith("-D"))
    base = int(flags["GLB_IP_CSUM_BASE"].rstrip("U"))
    for tot, dst in ((80, "198.18.0.23"), (1500, "255.255.255.254"), (60, "10.0.0.1")):
        d = struct.unpack("<I", ipaddress.IPv4Address(dst).packed)[0]
        csum = base + struct.unpack("<H", struct.pack(">H", tot))[0] + (d & 0xFFFF) + (d >> 16)
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = (csum & 0xFFFF) + (csum >> 16)
        stored = struct.pack("<H", ~csum & 0xFFFF)
        hdr = struct.pack(">BBHHHBB", 0x45, 0, tot, 0, 0x4000, 64, 17) + stored + \
            ipaddress.IPv4Address("198.18.0.11").packed + ipaddress.IPv4Address(dst).packed
        assert ones_complement_checksum(hdr) == 0


def test_k_wide_rows_pack_the_send_order() -> None:
    rows = np.tile(np.array([2, 0, -1, -1], dtype=np.int32), (65536, 1))
    rows[7] = [3, 1, 0, 2]
    packed = compile_tables([(WEB, rows)], OPTS).rows[0]
    ip = [int(b.ip) for b in WEB.backends]
    assert packed.shape == (65536, 4) and packed.dtype == np.dtype(">u4")
    assert list(packed[0]) == [ip[2], ip[0], 0, 0] and list(packed[7]) == [ip[3], ip[1], ip[0], ip[2]]
    assert packed[7].tobytes() == b"".join(b.ip.packed for b in (WEB.backends[i] for i in (3, 1, 0, 2)))
    # Upstream's two columns in a K=4 build: the same two addresses, then zeros.
    two = compile_tables([(WEB, make_rows(4, 1))], OPTS).rows[0]
    assert (two[:, 2:] == 0).all() and (two[:, 1] != 0).all()


def test_row_width_and_alt_hash_become_flags() -> None:
    assert "-DGLB_ROW_WIDTH=4" in OPTS.cflags(None) and "-DGLB_ALT_HASH=1" not in OPTS.cflags(None)
    alt = replace(OPTS, hash_fields=("src_addr", "src_port"), alt_hash_fields=("src_addr",)).cflags(None)
    assert "-DGLB_ALT_HASH=1" in alt and "-DGLB_ALT_HASH_SRC_ADDR=1" in alt and "-DGLB_ALT_HASH_SRC_PORT=0" in alt
    assert OPTS.maps_signature() != replace(OPTS, row_width=2).maps_signature()


def test_hash_fields_become_flags() -> None:
    flags = OPTS.cflags(None)
    assert "-DGLB_HASH_SRC_ADDR=1" in flags and "-DGLB_HASH_DST_PORT=0" in flags
    both = replace(OPTS, hash_fields=("dst_port", "src_addr")).cflags(None)
    assert "-DGLB_HASH_SRC_ADDR=1" in both and "-DGLB_HASH_DST_PORT=1" in both


def test_signatures_track_what_matters() -> None:
    assert OPTS.program_signature(None) == OPTS.program_signature(None)
    assert OPTS.program_signature(None) != replace(OPTS, mtu=9000).program_signature(None)
    assert OPTS.maps_signature() == replace(OPTS, mtu=9000).maps_signature()
    assert OPTS.maps_signature() != replace(OPTS, max_tables=32).maps_signature()


@pytest.mark.parametrize("change,match", [
    ({"gateway_mac": "03:00:00:00:00:01"}, "unicast"),
    ({"gateway_mac": "00:00:00:00:00:00"}, "unicast"),
    ({"gateway_mac": "zz"}, "MAC"),
    ({"hash_fields": ("src_addr", "src_addr")}, "distinct"),
    ({"hash_fields": ("vlan",)}, "distinct"),
    ({"hash_fields": ()}, "distinct"),
    ({"source_ip": ipaddress.IPv6Address("2001:db8::1")}, "IPv4"),
    ({"source_ip": ipaddress.IPv4Address("0.0.0.0")}, "source"),
    ({"mtu": 100}, "mtu"),
    ({"max_tables": 0}, "max_tables"),
    ({"row_width": 1}, "row_width"),
    ({"row_width": 9}, "row_width"),
    ({"row_width": 5, "alt_hash_fields": ("src_port",)}, "hops"),  # 4 + 5 hops > 8
    ({"alt_hash_fields": ("src_addr",)}, "nothing to migrate"),
    ({"alt_hash_fields": ("vlan",)}, "distinct"),
])
def test_bad_options(change: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        replace(OPTS, **change).validate()


def test_settings_defaults_and_validation() -> None:
    s = DirectorSettings("eth0", ipaddress.IPv4Address("198.18.0.11"), "02:47:4C:00:00:01")
    assert str(s.pin_dir) == "/sys/fs/bpf/glb/director/eth0" and s.gateway_mac == "02:47:4c:00:00:01"
    s.validate()
    with pytest.raises(InputError, match="pin_dir"):
        DirectorSettings("eth0", ipaddress.IPv4Address("198.18.0.11"), "02:00:00:00:00:01", pin_dir="/tmp/x").validate()
    with pytest.raises(InputError, match="interface"):
        DirectorSettings("a" * 16, ipaddress.IPv4Address("198.18.0.11"), "02:00:00:00:00:01").validate()
    with pytest.raises(InputError, match="source_ip"):
        DirectorSettings("eth0", "not-an-ip", "02:00:00:00:00:01")  # type: ignore[arg-type]


def test_compiled_tables_sorted_and_fragment_safety() -> None:
    c = compile_tables([(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2)), (RANGE, make_rows(3, 3)), (EMPTY, None)],
                       OPTS)
    assert c.names == ("web", "dns", "range", "empty")
    prefixes = [b.network.prefixlen for b, _, _ in c.binds4]
    assert prefixes == sorted(prefixes, reverse=True) and prefixes[-1] == 28
    block = pack_binds(c.binds4, [0, 1, 2, 3], 4, OPTS.max_binds)
    assert len(block) == BIND4.size * OPTS.max_binds
    entries = [BIND4.unpack_from(block, i * BIND4.size) for i in range(len(c.binds4) + 1)]
    by_net = {(ipaddress.IPv4Address(e[0]), e[2], e[5]): e for e in entries[:-1]}
    assert entries[-1][2] == 0, "the list ends with a proto-0 entry"
    web80 = by_net[(ipaddress.IPv4Address("203.0.113.10"), 6, 80)]
    dns = by_net[(ipaddress.IPv4Address("203.0.113.53"), 17, 53)]
    assert not web80[3] & BIND_FRAG_OK, "the /28 of another table overlaps web's VIP for TCP"
    assert dns[3] & BIND_FRAG_OK
    assert web80[7:11] == sip_prefix(bytes(WEB.hash_key))
    assert c.rows[3][:, 0].max() == 0, "no backends: destination 0 marks the table empty"
    ips = {int(b.ip) for b in WEB.backends}
    assert set(c.rows[0][:, 0].astype(int)) == ips
    b6 = pack_binds(c.binds6, [0, 1, 2, 3], 6, OPTS.max_binds)
    assert BIND6.unpack_from(b6, 0)[2] != 0


@pytest.mark.parametrize("tables,match", [
    (lambda: [(replace(WEB, backends=(Backend(ipaddress.ip_address("2001:db8::1")),)), np.zeros((65536, 2)))],
     "IPv4"),
    (lambda: [(WEB, np.zeros((100, 2), dtype=np.uint32))], "shape"),
    (lambda: [(WEB, np.zeros((65536, 5), dtype=np.int32))], "shape"),  # wider than row_width 4
    (lambda: [(WEB, np.full((65536, 2), -1, dtype=np.int32))], "pads the end"),
    (lambda: [(WEB, np.tile(np.array([0, -1, 1], dtype=np.int32), (65536, 1)))], "pads the end"),
    (lambda: [(WEB, np.full((65536, 2), 4, dtype=np.uint32))], "outside"),
    (lambda: [(WEB, np.zeros((65536, 2), dtype=np.float32))], "integer"),
    (lambda: [(WEB, None)], "rows are required"),
    (lambda: [(WEB, make_rows(4, 1)), (WEB, make_rows(4, 1))], "unique"),
    (lambda: [(replace(WEB, hash_key=b"short"), make_rows(4, 1))], "hash_key"),
    (lambda: [(replace(WEB, binds=(Bind(ipaddress.ip_network("203.0.113.10/32"), "sctp", 1, 1),)),
               make_rows(4, 1))], "tcp or udp"),
    (lambda: [(replace(WEB, binds=(Bind(ipaddress.ip_network("203.0.113.10/32"), "tcp", 9, 1),)),
               make_rows(4, 1))], "port range"),
    (lambda: [(WEB, make_rows(4, 1)), (replace(DNS, binds=(WEB.binds[0],)), make_rows(2, 1))], "overlaps"),
    (lambda: [(replace(WEB, name=f"t{i}"), make_rows(4, 1)) for i in range(17)], "max_tables"),
    (lambda: [(replace(WEB, binds=tuple(Bind(ipaddress.ip_network(f"198.51.100.{i}/32"), "tcp", 80, 80)
                                       for i in range(65))), make_rows(4, 1))], "max_binds"),
    (lambda: [("web", make_rows(4, 1))], "TableSpec"),
])
def test_bad_tables_rejected(tables, match: str) -> None:
    with pytest.raises(InputError, match=match):
        compile_tables(tables(), OPTS)


def test_slots_are_stable_and_new_services_avoid_live_slots() -> None:
    first = _assign_slots(["a", "b", "c"], {}, 4)
    assert first == {"a": 0, "b": 1, "c": 2}
    second = _assign_slots(["c", "d"], first, 4)
    assert second["c"] == 2 and second["d"] == 3, "d must not take a slot the live generation uses"
    third = _assign_slots(["c", "d", "e", "f"], second, 4)
    assert third["c"] == 2 and third["d"] == 3 and {third["e"], third["f"]} == {0, 1}


def test_meta_round_trip() -> None:
    meta = {"slots": {"web": 0}, "rows": [{}, {"0": "ab"}]}
    assert decode_meta(encode_meta(meta)) == meta
    assert decode_meta(bytes(64)) == {}
    with pytest.raises(InputError):
        encode_meta({"x": "y" * 40000})


def test_the_xdp_director_is_a_director_data_plane() -> None:
    """The agent holds a DirectorDataPlane; the XDP loader must stay one (DPDK is next)."""
    from glb_agent.dataplane.director import DirectorDataPlane, XdpDirector

    d = XdpDirector(DirectorSettings("eth0", ipaddress.IPv4Address("198.18.0.11"), "02:47:4c:00:00:01"))
    assert isinstance(d, DirectorDataPlane)
    assert d.pin_dir == d.pinned.pin_dir == Path("/sys/fs/bpf/glb/director/eth0")
