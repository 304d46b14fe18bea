"""An independent model of the director's policy (bpf/director.c header comment,
docs/director-dataplane.md), written from the documented rules rather than the C.

It shares nothing with the loader's packing code (director_maps): binds are matched from
the TableSpecs the test wrote ("most specific first: longest prefix, then narrowest port
range"), the fragment rule is evaluated from its definition (every overlapping bind of the
protocol uses the same table), the hash is the pure-Python SipHash and the outer headers
come from tests/dataplane/director_ref.py. Rows are send orders (destination, then the GUE
hops; K-wide, -1 padding); while hash fields migrate (alt_hash_fields) the old fields' whole
row follows as further hops, as upstream's alt_hash_fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from glb_agent.table.siphash import siphash24_int
from glb_agent.table.spec import TableSpec
from tests.dataplane.director_ref import Director, hash_message
from tests.fuzz.model import XDP_DROP, XDP_PASS, XDP_TX, Outcome

UNMATCHED = "_unmatched"
PROTO = {"tcp": 6, "udp": 17}
FULL, PROTO_ONLY, ADDR_ONLY = 0, 1, 2  # how much of a bind a packet must match
V4_ERRORS = (3, 11, 12)  # dest unreachable, time exceeded, parameter problem
V6_ERRORS = (1, 2, 3, 4)  # dest unreachable, packet too big, time exceeded, parameter problem
V6_EXT = (0, 43, 60, 44)  # hop-by-hop, routing, destination options, fragment
MAX_V6_EXT = 4  # extension headers the director walks before giving up
_U16 = struct.Struct("!H")


@dataclass
class _Table:
    name: str
    key: bytes
    rows: list[list[bytes]]  # per row: the send order (destination, then the GUE hops); [] = none


@dataclass
class _Bind:
    net: int
    mask: int
    prefixlen: int
    proto: int
    lo: int
    hi: int
    table: _Table
    frag_ok: bool = False


@dataclass
class _Flow:
    src: bytes
    dst: bytes
    sport: int = 0
    dport: int = 0
    hint: int = 0
    proto: int = 0
    mode: int = FULL
    fragment: bool = False


class DirectorModel:
    """Predicts verdict, output frame and counter cell of the director for any frame."""

    def __init__(self, ref: Director, tables: list[tuple[TableSpec, np.ndarray | None]], *, mtu: int = 1500,
                 vlan: bool = True, ipv6: bool = True, icmp: bool = True,
                 alt_hash_fields: tuple[str, ...] = ()) -> None:
        self.ref = ref
        self.fields = ref.hash_fields
        self.alt_fields = alt_hash_fields
        self.uses_ports = "src_port" in self.fields or "dst_port" in self.fields
        self.mtu, self.vlan, self.ipv6, self.icmp = mtu, vlan, ipv6, icmp
        self.binds: dict[int, list[_Bind]] = {4: [], 6: []}
        for spec, rows in tables:
            ips = [b.ip.packed for b in spec.backends]
            send = [[ips[i] for i in r if i >= 0] for r in rows.tolist()] if rows is not None and ips else []
            t = _Table(spec.name, bytes(spec.hash_key), send)
            for b in spec.binds:
                n = b.network
                self.binds[n.version].append(_Bind(int(n.network_address), int(n.netmask), n.prefixlen,
                                                   PROTO[b.proto], b.port_start, b.port_end, t))
        for binds in self.binds.values():
            binds.sort(key=lambda b: (-b.prefixlen, b.hi - b.lo))
            for b in binds:
                b.frag_ok = all(o.table is b.table for o in binds
                                if o.proto == b.proto and self._overlap(o, b))

    @staticmethod
    def _overlap(a: _Bind, b: _Bind) -> bool:
        m = a.mask & b.mask
        return (a.net & m) == (b.net & m)

    # -- bind matching ---------------------------------------------------------------------

    def _match(self, fam: int, dst: bytes, proto: int = 0, port: int = 0, mode: int = ADDR_ONLY) -> _Bind | None:
        d = int.from_bytes(dst, "big")
        for b in self.binds[fam]:
            if d & b.mask != b.net:
                continue
            if mode != ADDR_ONLY and b.proto != proto:
                continue
            if mode == FULL and not b.lo <= port <= b.hi:
                continue
            return b
        return None

    def _not_vip(self, frame: bytes) -> Outcome:
        return Outcome(XDP_PASS, frame, "pass_not_vip", UNMATCHED)

    def _bad(self, frame: bytes, fam: int, dst: bytes) -> Outcome:
        b = self._match(fam, dst)
        if b is None:
            return self._not_vip(frame)
        return Outcome(XDP_DROP, frame, "drop_malformed", b.table.name)

    def _icmp_other(self, frame: bytes, fam: int, dst: bytes) -> Outcome:
        b = self._match(fam, dst)
        if b is None:
            return self._not_vip(frame)
        return Outcome(XDP_PASS, frame, "pass_icmp", b.table.name)

    # -- forwarding ------------------------------------------------------------------------

    def _forward(self, frame: bytes, fam: int, f: _Flow, tci: int | None, inner_len: int) -> Outcome:
        b = self._match(fam, f.dst, f.proto, f.dport, f.mode)
        if b is None:
            return self._not_vip(frame)
        t = b.table
        if f.fragment and (self.uses_ports or not b.frag_ok):
            return Outcome(XDP_DROP, frame, "drop_fragment", t.name)
        h = siphash24_int(t.key, hash_message(self.fields, f.src, f.dst, f.sport, f.dport)) & 0xFFFF
        send = t.rows[h] if t.rows else []
        if not send:
            return Outcome(XDP_DROP, frame, "drop_no_backend", t.name)
        hops = send[1:]
        if self.alt_fields:  # hash fields migrating: the old fields' whole row follows as hops
            old = siphash24_int(t.key, hash_message(self.alt_fields, f.src, f.dst, f.sport, f.dport)) & 0xFFFF
            hops = hops + t.rows[old]
        if inner_len + 36 + 4 * len(hops) > self.mtu:  # outer IPv4 + UDP + GUE + hop list
            return Outcome(XDP_DROP, frame, "drop_too_big", t.name)
        out = self.ref.encap_hops(frame, h, f.hint, send[0], *hops, vlan_tci=tci)
        return Outcome(XDP_TX, out, "forwarded", t.name)

    # -- parsing ---------------------------------------------------------------------------

    def decide(self, frame: bytes) -> Outcome:
        n = len(frame)
        if n < 14:
            return self._not_vip(frame)
        et = _U16.unpack_from(frame, 12)[0]
        l2, tci = 14, None
        if self.vlan and et == 0x8100:  # one 802.1Q tag; anything stacked on it is not IP
            if n < 18:
                return self._not_vip(frame)
            tci = _U16.unpack_from(frame, 14)[0]
            et = _U16.unpack_from(frame, 16)[0]
            l2 = 18
        if et == 0x0800:
            return self._v4(frame, l2, tci)
        if et == 0x86DD and self.ipv6:
            return self._v6(frame, l2, tci)
        return self._not_vip(frame)

    def _v4(self, frame: bytes, ip: int, tci: int | None) -> Outcome:
        n = len(frame)
        if n < ip + 20:
            return self._not_vip(frame)  # cannot even read the destination
        dst = frame[ip + 16 : ip + 20]
        ver, ihl = frame[ip] >> 4, (frame[ip] & 15) * 4
        tot = _U16.unpack_from(frame, ip + 2)[0]
        if ver != 4 or ihl < 20 or tot < ihl or ip + tot > n:
            return self._bad(frame, 4, dst)
        proto = frame[ip + 9]
        ident = _U16.unpack_from(frame, ip + 4)[0]
        fragment = _U16.unpack_from(frame, ip + 6)[0] & 0x3FFF != 0
        f = _Flow(frame[ip + 12 : ip + 16], dst, proto=proto, fragment=fragment)
        l4 = ip + ihl
        if proto in (6, 17):
            if fragment:  # no ports in later fragments: hash all fragments alike
                f.mode, f.hint = PROTO_ONLY, ident
            else:
                if ihl + (20 if proto == 6 else 8) > tot:
                    return self._bad(frame, 4, dst)
                f.sport, f.dport = struct.unpack_from("!HH", frame, l4)
                f.hint = f.sport
        elif proto == 1 and self.icmp:
            f.mode, f.hint, f.fragment = ADDR_ONLY, ident, False
            if not fragment:
                if ihl + 8 > tot:
                    return self._bad(frame, 4, dst)
                typ = frame[l4]
                if typ in V4_ERRORS:
                    q = l4 + 8  # the quoted packet, which the VIP sent to the client
                    if ihl + 8 + 20 > tot:
                        return self._bad(frame, 4, dst)
                    qihl = (frame[q] & 15) * 4
                    if (frame[q] >> 4 != 4 or qihl < 20 or ihl + 8 + qihl + 4 > tot
                            or frame[q + 12 : q + 16] != dst
                            or _U16.unpack_from(frame, q + 6)[0] & 0x1FFF):
                        return self._bad(frame, 4, dst)
                    qsport, qdport = struct.unpack_from("!HH", frame, q + qihl)
                    f = _Flow(frame[q + 16 : q + 20], dst, qdport, qsport, qdport, frame[q + 9], FULL)
                elif typ != 8:
                    return self._icmp_other(frame, 4, dst)
        else:
            return self._not_vip(frame)
        return self._forward(frame, 4, f, tci, tot)

    def _v6(self, frame: bytes, ip: int, tci: int | None) -> Outcome:
        n = len(frame)
        if n < ip + 40:
            return self._not_vip(frame)
        dst = frame[ip + 24 : ip + 40]
        plen = _U16.unpack_from(frame, ip + 4)[0]
        if frame[ip] >> 4 != 6 or plen == 0 or ip + 40 + plen > n:
            return self._bad(frame, 6, dst)
        end = 40 + plen  # offsets below are relative to the IPv6 header
        f = _Flow(frame[ip + 8 : ip + 24], dst, hint=_U16.unpack_from(frame, ip + 2)[0])
        nh, off = frame[ip + 6], 40
        for _ in range(MAX_V6_EXT):
            if nh not in V6_EXT:
                break
            if off + 8 > end:
                return self._bad(frame, 6, dst)
            h = ip + off
            if nh == 44:
                f.fragment = True
                nh, off = frame[h], off + 8
                if _U16.unpack_from(frame, h + 2)[0] & 0xFFF8:
                    f.mode = PROTO_ONLY  # not the first fragment: no L4 header
                    break
            else:
                nh, off = frame[h], off + (frame[h + 1] + 1) * 8
        if off > end:
            return self._bad(frame, 6, dst)
        f.proto = nh
        l4 = ip + off
        if nh in (6, 17):
            if f.fragment:
                f.mode = PROTO_ONLY
            else:
                if off + (20 if nh == 6 else 8) > end:
                    return self._bad(frame, 6, dst)
                f.sport, f.dport = struct.unpack_from("!HH", frame, l4)
                f.hint = f.sport
        elif nh == 58 and self.icmp:
            f.mode = ADDR_ONLY
            if not f.fragment:
                if off + 8 > end:
                    return self._bad(frame, 6, dst)
                typ = frame[l4]
                if typ in V6_ERRORS:
                    q = l4 + 8
                    if off + 8 + 40 + 4 > end or frame[q] >> 4 != 6 or frame[q + 8 : q + 24] != dst:
                        return self._bad(frame, 6, dst)
                    qsport, qdport = struct.unpack_from("!HH", frame, q + 40)
                    f = _Flow(frame[q + 24 : q + 40], dst, qdport, qsport, qdport, frame[q + 6], FULL)
                elif typ != 128:
                    return self._icmp_other(frame, 6, dst)
            f.fragment = False
        else:
            return self._not_vip(frame)
        return self._forward(frame, 6, f, tci, end)
