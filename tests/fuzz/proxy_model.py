"""An independent model of the proxy's documented policy (docs/proxy-dataplane.md, the
header comment of bpf/proxy.c, the counter list in bpf/include/proxy_defs.h).

It is a policy model, not a transcription: it states what the proxy must do with a frame
(pass it untouched, drop it for a named reason, decapsulate it, or forward it to the next
hop with the documented rewrites) given the proxy's configuration and a description of the
host's state that the program can observe:

* ``established``: TCP 4-tuples (client, client port, VIP, port) that have a full socket in
  the host's namespace; the harness creates exactly these connections (tests/fuzz/env.py);
* ``listeners``: (address, port) with a listening socket. A listener alone is not a known
  connection; its SYN-cookie check never succeeds in the harness because the listener's SYN
  queue never overflows (no packet under test reaches the stack) and tcp_syncookies is 1;
* ``routes``: how ``bpf_fib_lookup`` resolves a next hop: this proxy's on-link subnet with
  exactly one resolved neighbour (the peer), local addresses (not forwardable) and a default
  route via the peer for everything else.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from tests.fuzz.model import XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, Outcome

DIRECTOR_ROLE, PROXY_ROLE = 1, 2
MAX_HOPS = 8
_U16 = struct.Struct("!H")


def _csum_add(*words: int) -> int:
    c = sum(words)
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    return c


def csum_update(check: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: the checksum after ``old`` bytes (even length, 16-bit aligned in the
    summed data) became ``new``. A checksum that was wrong before stays exactly as wrong."""
    words = [~check & 0xFFFF]
    for i in range(0, len(old), 2):
        words.append(~_U16.unpack_from(old, i)[0] & 0xFFFF)
        words.append(_U16.unpack_from(new, i)[0])
    return ~_csum_add(*words) & 0xFFFF


@dataclass
class ProxyHostModel:
    """What the proxy is configured with and what its host holds (see module docstring)."""

    address: bytes
    mac: bytes
    gue_port: int
    senders: dict[bytes, int]
    dsts: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    established: set[tuple[bytes, int, bytes, int]] = field(default_factory=set)
    listeners: set[tuple[bytes, int]] = field(default_factory=set)
    onlink: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network("0.0.0.0/32"))
    neighbours: dict[bytes, bytes] = field(default_factory=dict)
    local: set[bytes] = field(default_factory=set)
    gateway_mac: bytes | None = None  # default route's neighbour
    mtu: int = 1500
    # Frames arrive on the interface the next hops are reached through (forward: XDP_TX), or
    # on another one (XDP_REDIRECT). Every route here leaves through that one interface.
    received_on_egress: bool = True

    def dst_ok(self, addr: bytes) -> bool:
        a = ipaddress.ip_address(addr)
        return any(a in n for n in self.dsts if n.version == a.version)

    def known(self, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        return (src, sport, dst, dport) in self.established

    def route(self, hop: bytes) -> bytes | None:
        """Destination MAC for a forward to ``hop``, or None where bpf_fib_lookup fails."""
        a = ipaddress.IPv4Address(hop)
        if hop in self.local or a.is_loopback or a == self.onlink.broadcast_address:
            return None  # a local destination is not forwarded
        if a in self.onlink:
            return self.neighbours.get(hop)  # unresolved on-link neighbour: no MAC yet
        return self.gateway_mac


class ProxyModel:
    """Predicts the proxy's verdict, output frame and counter for any frame."""

    def __init__(self, host: ProxyHostModel) -> None:
        self.h = host

    @staticmethod
    def _drop(frame: bytes, reason: str) -> Outcome:
        return Outcome(XDP_DROP, frame, reason)

    def decide(self, frame: bytes) -> Outcome:
        h = self.h
        n = len(frame)
        untouched = Outcome(XDP_PASS, frame, None)
        # Only untagged IPv4 UDP to our address and the GUE port concerns the proxy at all.
        if n < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17 or frame[30:34] != h.address:
            return untouched
        ohl = (frame[14] & 15) * 4
        u = 14 + ohl
        if ohl < 20 or u + 8 > n or _U16.unpack_from(frame, u + 2)[0] != h.gue_port:
            return untouched
        # GUE for us: used or dropped from here on, never passed whole.
        if frame[14] >> 4 != 4 or _U16.unpack_from(frame, 20)[0] & 0x3FFF:
            return self._drop(frame, "drop_outer")  # fragments cannot be parsed
        tot = _U16.unpack_from(frame, 16)[0]
        udp_len = _U16.unpack_from(frame, u + 4)[0]
        if 14 + tot > n or udp_len != tot - ohl:
            return self._drop(frame, "drop_outer")
        roles = h.senders.get(frame[26:30])
        if roles is None:
            return self._drop(frame, "drop_sender")
        g = u + 8
        if g + 8 > n or udp_len < 16:
            return self._drop(frame, "drop_gue_length")
        if frame[g] & 0xE0 or frame[g + 2 : g + 4] != b"\0\0":
            return self._drop(frame, "drop_gue_version")
        gproto = frame[g + 1]
        if gproto not in (4, 41):
            return self._drop(frame, "drop_gue_proto")
        if frame[g + 4 : g + 6] != b"\0\0":
            return self._drop(frame, "drop_gue_private")
        next_hop, hop_count = frame[g + 6], frame[g + 7]
        hlen = frame[g] & 0x1F
        if hop_count > MAX_HOPS or hlen != hop_count + 1:
            return self._drop(frame, "drop_gue_length")
        if next_hop > hop_count:
            return self._drop(frame, "drop_gue_next_hop")
        if not roles & DIRECTOR_ROLE and next_hop == 0:
            return self._drop(frame, "drop_sender_role")  # a peer only sends forwards
        if udp_len < 8 + 4 + 4 * hlen:
            return self._drop(frame, "drop_gue_length")
        inner = g + 4 + 4 * hlen
        room = udp_len - 8 - 4 - 4 * hlen  # inner bytes the outer headers vouch for
        strip = ohl + 8 + 4 + 4 * hlen  # outer IPv4 + UDP + GUE base + private data and hops
        ethertype = b"\x08\x00" if gproto == 4 else b"\x86\xdd"

        def accept(reason: str) -> Outcome:
            return Outcome(XDP_PASS, frame[:12] + ethertype + frame[14 + strip :], reason)

        verdict = self._inner4(frame, inner, room) if gproto == 4 else self._inner6(frame, inner, room)
        if verdict != "unknown":
            return accept(verdict) if verdict.startswith("accept") else self._drop(frame, verdict)
        # Not a connection of ours: the next proxy in the list gets its second chance.
        if next_hop >= hop_count:
            return accept("accept_last_resort")
        hop = frame[g + 8 + 4 * next_hop : g + 12 + 4 * next_hop]
        if hop == h.address:
            return accept("accept_self_hop")
        dmac = h.route(hop)
        if dmac is None or tot > h.mtu:
            return self._drop(frame, "drop_fwd_fib")
        out = self._forwarded(frame, u, g, hop, dmac)
        if h.received_on_egress:
            return Outcome(XDP_TX, out, "forwarded_tx")
        return Outcome(XDP_REDIRECT, out, "forwarded_redirect")

    def _forwarded(self, frame: bytes, u: int, g: int, hop: bytes, dmac: bytes) -> bytes:
        """The documented rewrite: new MACs, src = us, dst = hop, TTL 64, next_hop + 1, the
        IPv4 checksum updated and a non-zero UDP checksum kept right."""
        f = bytearray(frame)
        old_src, old_dst = frame[26:30], frame[30:34]
        f[0:6], f[6:12] = dmac, self.h.mac
        old_tp = frame[22:24]
        f[22] = 64
        check = _U16.unpack_from(frame, 24)[0]
        check = csum_update(check, old_tp + old_src + old_dst, bytes(f[22:24]) + self.h.address + hop)
        f[24:26] = _U16.pack(check)
        f[26:30], f[30:34] = self.h.address, hop
        old_word = frame[g + 6 : g + 8]
        f[g + 6] = (frame[g + 6] + 1) & 0xFF
        ucheck = _U16.unpack_from(frame, u + 6)[0]
        if ucheck:
            ucheck = csum_update(ucheck, old_word + old_src + old_dst, bytes(f[g + 6 : g + 8]) + self.h.address + hop)
            f[u + 6 : u + 8] = _U16.pack(ucheck or 0xFFFF)
        return bytes(f)

    # -- the inner packet -----------------------------------------------------------------------

    def _tcp_verdict(self, frame: bytes, th: int, end: int, src: bytes, dst: bytes) -> str:
        if th + 20 > end or frame[th + 12] >> 4 < 5:
            return "drop_inner"
        flags = frame[th + 13]
        if flags & 0x02 and not flags & 0x10:
            return "accept_syn"  # new connections always start here
        sport, dport = struct.unpack_from("!HH", frame, th)
        return "accept_established" if self.h.known(src, sport, dst, dport) else "unknown"

    def _ptb_verdict(self, frame: bytes, ports: int, end: int, qsrc: bytes, qdst: bytes) -> str:
        """A PMTU error quoting our TCP packet VIP -> client: decided on that connection."""
        if ports + 4 > end:
            return "drop_inner"
        qsport, qdport = struct.unpack_from("!HH", frame, ports)
        return "accept_ptb_known" if self.h.known(qdst, qdport, qsrc, qsport) else "unknown"

    def _inner4(self, frame: bytes, ip: int, room: int) -> str:
        n = len(frame)
        if ip + 20 > n or frame[ip] >> 4 != 4 or frame[ip] & 15 < 5:
            return "drop_inner"
        ihl = (frame[ip] & 15) * 4
        tot = _U16.unpack_from(frame, ip + 2)[0]
        if tot < ihl or tot > room:
            return "drop_inner"
        src, dst = frame[ip + 12 : ip + 16], frame[ip + 16 : ip + 20]
        if not self.h.dst_ok(dst):
            return "drop_inner_dst"
        if _U16.unpack_from(frame, ip + 6)[0] & 0x1FFF:
            return "accept_fragment"  # no ports to look up
        proto = frame[ip + 9]
        end = ip + tot  # the inner packet ends where its own length says
        l4 = ip + ihl
        if proto == 17:
            return "accept_udp"
        if proto == 1:
            if l4 + 8 > end:
                return "drop_inner"
            if frame[l4] != 3 or frame[l4 + 1] != 4:
                return "accept_icmp"
            q = l4 + 8
            if q + 20 > end or frame[q] >> 4 != 4 or frame[q] & 15 < 5:
                return "drop_inner"
            if frame[q + 9] != 6:
                return "accept_icmp"
            return self._ptb_verdict(frame, q + (frame[q] & 15) * 4, end, frame[q + 12 : q + 16],
                                     frame[q + 16 : q + 20])
        if proto != 6:
            return "drop_inner_proto"
        return self._tcp_verdict(frame, l4, end, src, dst)

    def _inner6(self, frame: bytes, ip: int, room: int) -> str:
        n = len(frame)
        if ip + 40 > n or frame[ip] >> 4 != 6:
            return "drop_inner"
        plen = _U16.unpack_from(frame, ip + 4)[0]
        if 40 + plen > room:
            return "drop_inner"
        src, dst = frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40]
        if not self.h.dst_ok(dst):
            return "drop_inner_dst"
        nh = frame[ip + 6]
        end = ip + 40 + plen
        l4 = ip + 40
        if nh == 44:
            return "accept_fragment"
        if nh == 17:
            return "accept_udp"
        if nh == 58:
            if l4 + 8 > end:
                return "drop_inner"
            if frame[l4] != 2:
                return "accept_icmp"
            q = l4 + 8
            if q + 44 > end or frame[q] >> 4 != 6:
                return "drop_inner"
            if frame[q + 6] != 6:
                return "accept_icmp"
            return self._ptb_verdict(frame, q + 40, end, frame[q + 8 : q + 24], frame[q + 24 : q + 40])
        if nh != 6:
            return "drop_inner_proto"
        return self._tcp_verdict(frame, l4, end, src, dst)
