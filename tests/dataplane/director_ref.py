"""The director's expected output, computed from first principles in Python.

Nothing here reads the program's maps or reuses the loader's packing code: the test states
what the flow is (client, VIP, ports, hint), and this module hashes it with the pure-Python
SipHash-2-4, picks the row from the table the test built, and assembles the outer headers
byte by byte from upstream's wire format. A test then compares whole frames.

The byte-level entry points (``hash_message``, ``Director.encap_hops``) serve the packet
fuzzer (tests/fuzz), whose own policy model parses frames and needs the same wire format
without building ``Flow`` objects from strings a million times.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import numpy as np

from glb_agent.table.siphash import siphash24_int
from glb_agent.table.spec import TableSpec

GUE_PORT = 19523
HASH_ORDER = ("src_addr", "dst_addr", "src_port", "dst_port")


@dataclass(frozen=True)
class Table:
    """A table as the test built it: the spec and the rows (backend indices)."""

    spec: TableSpec
    rows: np.ndarray

    def hops(self, pkt_hash: int) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        primary, secondary = self.rows[pkt_hash & 0xFFFF][:2]
        return self.spec.backends[int(primary)].ip, self.spec.backends[int(secondary)].ip

    def send_order(self, pkt_hash: int) -> list[bytes]:
        """The row of ``pkt_hash``: destination first, then the GUE hops (-1 pads)."""
        return [self.spec.backends[int(i)].ip.packed for i in self.rows[pkt_hash & 0xFFFF] if int(i) >= 0]


@dataclass(frozen=True)
class Flow:
    """The hash input as upstream defines it (client = source, VIP = destination)."""

    client: str
    vip: str
    sport: int = 0
    dport: int = 0

    def message(self, fields: tuple[str, ...]) -> bytes:
        return hash_message(fields, ipaddress.ip_address(self.client).packed,
                            ipaddress.ip_address(self.vip).packed, self.sport, self.dport)


def hash_message(fields: tuple[str, ...], src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    """The SipHash input: the configured fields in upstream's order, as on the wire."""
    parts = {"src_addr": src, "dst_addr": dst, "src_port": struct.pack(">H", sport),
             "dst_port": struct.pack(">H", dport)}
    return b"".join(parts[f] for f in HASH_ORDER if f in fields)


def ones_complement_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


@dataclass(frozen=True)
class Director:
    """The director's fixed settings, as the test configured them."""

    source_ip: str
    src_mac: str
    gateway_mac: str
    hash_fields: tuple[str, ...] = ("src_addr",)

    def pkt_hash(self, table: Table, flow: Flow) -> int:
        return siphash24_int(table.spec.hash_key, flow.message(self.hash_fields))

    def encap(self, frame: bytes, table: Table, flow: Flow, hint: int, *, vlan_tci: int | None = None
              ) -> bytes:
        """The frame the director must send for ``frame`` (Ethernet in, Ethernet out)."""
        h = self.pkt_hash(table, flow)
        return self.encap_hops(frame, h, hint, *table.send_order(h), vlan_tci=vlan_tci)

    def encap_hops(self, frame: bytes, h: int, hint: int, primary: bytes, *hops: bytes,
                   vlan_tci: int | None = None) -> bytes:
        """``frame`` encapsulated towards ``primary`` with ``hops`` as the GUE hop list (upstream:
        the secondary alone), for packet hash ``h`` and upstream's flow ``hint``; everything
        after the L2 header (trailing bytes beyond the IP length included) travels as the
        inner packet."""
        l2 = 18 if vlan_tci is not None else 14
        inner = frame[l2:]
        version = inner[0] >> 4
        if version == 4:
            inner_len = struct.unpack_from(">H", inner, 2)[0]
            gue_proto = 4
        else:
            inner_len = 40 + struct.unpack_from(">H", inner, 4)[0]
            gue_proto = 41
        eth = mac_bytes(self.gateway_mac) + mac_bytes(self.src_mac)
        if vlan_tci is not None:
            eth += struct.pack(">HH", 0x8100, vlan_tci)
        eth += struct.pack(">H", 0x0800)
        outer = 36 + 4 * len(hops)  # IPv4 + UDP + GUE base + private data + hop list
        ip_wo_csum = struct.pack(">BBHHHBBH4s4s", 0x45, 0, inner_len + outer, 0, 0x4000, 64, 17, 0,
                                 ipaddress.ip_address(self.source_ip).packed, primary)
        csum = ones_complement_checksum(ip_wo_csum)
        ip = ip_wo_csum[:10] + struct.pack(">H", csum) + ip_wo_csum[12:]
        udp = struct.pack(">HHHH", 0x8000 | ((h ^ hint) & 0x7FFF), GUE_PORT, inner_len + outer - 20, 0)
        gue = struct.pack(">BBH", 1 + len(hops), gue_proto, 0) + struct.pack(">HBB", 0, 0, len(hops)) + b"".join(hops)
        return eth + ip + udp + gue + inner
