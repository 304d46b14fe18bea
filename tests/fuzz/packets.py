"""Byte-level frame builders for the fuzzer's hot loop (struct, not scapy).

scapy builds one packet in ~100 us; the fuzzer makes millions, so every header here is one
``struct.pack`` with every field settable, including the wrong values the mutators want
(a bad IHL, a length that lies, a version that is not 4). Checksums are computed where a
real sender would compute them; the programs under test never verify L4 checksums, but
the proxy keeps the outer IPv4 and UDP checksums right when it forwards, so those matter.
"""

from __future__ import annotations

import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_ARP = 0x0806

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
IPPROTO_DSTOPTS = 60

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_ETH = struct.Struct("!6s6sH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_ICMP = struct.Struct("!BBH4s")
_U16 = struct.Struct("!H")


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data`` (odd lengths padded with a zero byte)."""
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def eth(dst: bytes, src: bytes, ethertype: int, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet header; ``vlans`` is a stack of (TPID, TCI) tags, outermost first."""
    if not vlans:
        return _ETH.pack(dst, src, ethertype)
    out = dst + src
    for tpid, tci in vlans:
        out += struct.pack("!HH", tpid, tci)
    return out + _U16.pack(ethertype)


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ident: int = 0, frag: int = 0x4000,
         ttl: int = 64, tos: int = 0, options: bytes = b"", version: int = 4, ihl: int | None = None,
         tot_len: int | None = None, csum: int | None = None) -> bytes:
    """IPv4 header + payload. ``frag`` is the flags+offset word (default DF)."""
    if ihl is None:
        ihl = 5 + len(options) // 4
    if tot_len is None:
        tot_len = 20 + len(options) + len(payload)
    hdr = _IP4.pack((version << 4) | (ihl & 0xF), tos, tot_len & 0xFFFF, ident, frag, ttl, proto, 0,
                    src, dst) + options
    if csum is None:
        csum = checksum(hdr)
    return hdr[:10] + _U16.pack(csum) + hdr[12:] + payload


def ipv6(src: bytes, dst: bytes, nexthdr: int, payload: bytes, *, flow: int = 0, hlim: int = 64,
         version: int = 6, plen: int | None = None) -> bytes:
    if plen is None:
        plen = len(payload)
    return _IP6.pack((version << 28) | (flow & 0xFFFFF), plen & 0xFFFF, nexthdr, hlim, src, dst) + payload


def tcp(sport: int, dport: int, flags: int, *, seq: int = 1, ack: int = 0, doff: int = 5,
        window: int = 65535, payload: bytes = b"") -> bytes:
    """TCP header with a zero checksum (nothing under test verifies it) + options padding."""
    opts = bytes(max(0, doff - 5) * 4)
    return _TCP.pack(sport, dport, seq, ack, (doff & 0xF) << 4, flags, window, 0, 0) + opts + payload


def udp(sport: int, dport: int, payload: bytes, *, length: int | None = None, check: int = 0) -> bytes:
    if length is None:
        length = 8 + len(payload)
    return _UDP.pack(sport, dport, length & 0xFFFF, check) + payload


def udp_check4(src: bytes, dst: bytes, segment: bytes) -> int:
    """UDP checksum over the IPv4 pseudo-header (0 is sent as 0xffff)."""
    pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, len(segment))
    c = checksum(pseudo + segment[:6] + b"\0\0" + segment[8:])
    return c or 0xFFFF


def icmp(type_: int, code: int, rest: bytes, payload: bytes) -> bytes:
    """ICMP / ICMPv6 header (checksum left 0: no program under test reads it)."""
    return _ICMP.pack(type_, code, 0, rest) + payload


def ext6(nexthdr: int, units: int = 0, fill: int = 0) -> bytes:
    """A generic IPv6 extension header (hop-by-hop, routing, destination options) of
    (units + 1) * 8 bytes; the body is padding (PadN-like filler)."""
    body = bytes([fill]) * (6 + 8 * units)
    return bytes([nexthdr, units & 0xFF]) + body


def frag6(nexthdr: int, offset: int, more: bool, ident: int) -> bytes:
    """IPv6 fragment header; ``offset`` in 8-byte units."""
    return struct.pack("!BBHI", nexthdr, 0, ((offset & 0x1FFF) << 3) | int(more), ident)


def gue(inner: bytes, proto: int, hops: tuple[bytes, ...], next_hop: int, *, version: int = 0,
        cbit: int = 0, hlen: int | None = None, flags: int = 0, private_type: int = 0,
        hop_count: int | None = None) -> bytes:
    """GUE base header + GLB private data + hop list + inner packet (glb_gue.h)."""
    if hop_count is None:
        hop_count = len(hops)
    if hlen is None:
        hlen = 1 + len(hops)
    return (struct.pack("!BBHHBB", (version << 6) | (cbit << 5) | (hlen & 0x1F), proto, flags,
                        private_type, next_hop & 0xFF, hop_count & 0xFF) + b"".join(hops) + inner)


def pcap_bytes(frames: list[bytes]) -> bytes:
    """A classic little-endian pcap (LINKTYPE_ETHERNET) holding ``frames``, timestamps = index."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(f), len(f)))
        out.append(f)
    return b"".join(out)


def read_pcap(data: bytes) -> list[bytes]:
    """Frames of a classic pcap written by :func:`pcap_bytes` (or any LE/BE classic pcap)."""
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        e = ">"
    else:
        raise ValueError("not a classic pcap file (pcapng is not supported)")
    off, frames = 24, []
    while off + 16 <= len(data):
        _s, _us, incl, _orig = struct.unpack_from(e + "IIII", data, off)
        off += 16
        frames.append(data[off : off + incl])
        off += incl
    return frames
