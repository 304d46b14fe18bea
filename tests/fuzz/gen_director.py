"""Frames for the director: valid VIP traffic of both families, then everything that is
almost valid (see docs/fuzzing.md for the category list).

Packet ``i`` of seed ``s`` comes from its own ``random.Random`` seeded with (s, i), so any
single packet can be regenerated from its index without replaying the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from glb_agent.table.spec import TableSpec
from tests.fuzz import packets as P
from tests.fuzz.mutate import mutate

CLIENT_MAC = bytes.fromhex("02000000aa01")
DIRECTOR_MAC = bytes.fromhex("02474c000011")
CLIENT4 = (0xC6336400, 24)  # 198.51.100.0/24
CLIENT6 = (0x20010DB8020000000000000000000000, 64)  # 2001:db8:200::/64
OTHER4 = (0xCB007100, 24)  # 203.0.113.0/24: VIPs, prefixes and plain neighbours
OTHER6 = (0x20010DB8000000000000000000000000, 32)


def rng_for(seed: int, index: int) -> random.Random:
    """The generator of packet ``index`` of run ``seed`` (independent of every other packet)."""
    return random.Random((seed << 32) ^ index)


def _rand_in(rng: random.Random, net: int, plen: int, bits: int) -> bytes:
    host = rng.getrandbits(bits - plen) if plen < bits else 0
    return (net | host).to_bytes(bits // 8, "big")


@dataclass(frozen=True)
class Target:
    """One bind of a table, as a generator target."""

    family: int
    net: int
    plen: int
    proto: int
    lo: int
    hi: int

    def addr(self, rng: random.Random) -> bytes:
        return _rand_in(rng, self.net, self.plen, 32 if self.family == 4 else 128)

    def port(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi) if rng.random() < 0.85 else rng.randrange(65536)


class DirectorGen:
    """Makes (category, frame, mutations) for packet ``index``."""

    CATEGORIES = {
        "tcp4": 10, "udp4": 6, "tcp6": 8, "udp6": 5, "opts4": 4, "frag4": 6, "frag6": 5, "ext6": 6,
        "echo4": 3, "echo6": 3, "icmp4_err": 6, "icmp6_err": 5, "icmp_other": 3, "notvip": 5,
        "other_proto": 2, "big": 3, "nonip": 2,
    }

    def __init__(self, tables: list[TableSpec], mutate_p: float = 0.35) -> None:
        self.targets = {4: [], 6: []}  # type: dict[int, list[Target]]
        for spec in tables:
            for b in spec.binds:
                n = b.network
                self.targets[n.version].append(Target(n.version, int(n.network_address), n.prefixlen,
                                                      6 if b.proto == "tcp" else 17, b.port_start,
                                                      b.port_end))
        for fam, (net, plen) in ((4, OTHER4), (6, OTHER6)):
            if not self.targets[fam]:  # a family without binds (a director built without IPv6)
                self.targets[fam] = [Target(fam, net, plen, proto, 0, 65535) for proto in (6, 17)]
        self.mutate_p = mutate_p
        self._cats = tuple(self.CATEGORIES)
        self._weights = tuple(self.CATEGORIES.values())

    # -- addresses ---------------------------------------------------------------------------

    def _client(self, rng: random.Random, fam: int) -> bytes:
        return _rand_in(rng, *CLIENT4, 32) if fam == 4 else _rand_in(rng, *CLIENT6, 128)

    def _target(self, rng: random.Random, fam: int, proto: int | None = None) -> tuple[bytes, int, int]:
        """(VIP address, protocol, port) of a random bind (of ``proto`` if given), sometimes with
        TCP and UDP swapped."""
        t = rng.choice([t for t in self.targets[fam] if t.proto == proto] or self.targets[fam])
        p = t.proto if proto is None else proto
        if p in (6, 17) and rng.random() < 0.1:
            p = 23 - p  # tcp <-> udp: an address that may be a VIP for the other protocol only
        return t.addr(rng), p, t.port(rng)

    def _l4(self, rng: random.Random, proto: int, sport: int, dport: int, payload: bytes) -> bytes:
        if proto == 6:
            return P.tcp(sport, dport, rng.choice((P.TCP_SYN, P.TCP_ACK, P.TCP_ACK | P.TCP_PSH, P.TCP_RST,
                                                   P.TCP_FIN | P.TCP_ACK)),
                         seq=rng.getrandbits(32), ack=rng.getrandbits(32), payload=payload)
        return P.udp(sport, dport, payload)

    def _payload(self, rng: random.Random, big: bool = False) -> bytes:
        if big:
            return rng.randbytes(rng.randint(1380, 1480))
        return rng.randbytes(rng.choice((0, 0, 1, 7, 16, 64, rng.randrange(200))))

    # -- categories ----------------------------------------------------------------------------

    def _l3(self, rng: random.Random, cat: str) -> tuple[int, bytes]:
        """(ethertype, L3 packet) for ``cat``."""
        if cat in ("tcp4", "udp4", "tcp6", "udp6", "big", "opts4"):
            fam = 6 if cat.endswith("6") or (cat == "big" and rng.random() < 0.5) else 4
            dst, proto, dport = self._target(rng, fam, 6 if cat.startswith("tcp") else
                                              17 if cat.startswith("udp") else None)
            src = self._client(rng, fam)
            l4 = self._l4(rng, proto, rng.randrange(65536), dport, self._payload(rng, cat == "big"))
            if fam == 4:
                opts = rng.randbytes(4 * rng.randint(1, 10)) if cat == "opts4" else b""
                return P.ETH_P_IP, P.ipv4(src, dst, proto, l4, ident=rng.randrange(65536), options=opts)
            return P.ETH_P_IPV6, P.ipv6(src, dst, proto, l4, flow=rng.getrandbits(20))
        if cat == "frag4":
            dst, proto, dport = self._target(rng, 4, rng.choice((6, 17, 1)) if rng.random() < 0.3 else None)
            src = self._client(rng, 4)
            if proto == 1:
                l4 = P.icmp(rng.choice((8, 0, 3)), 0, rng.randbytes(4), self._payload(rng))
            else:
                l4 = self._l4(rng, proto, rng.randrange(65536), dport, self._payload(rng))
            word = rng.choice((0x2000, 0x2000 | rng.randint(1, 0x1FFF), rng.randint(1, 0x1FFF),
                               0x6000 | rng.randint(0, 0x1FFF)))
            if word & 0x1FFF and rng.random() < 0.5:
                l4 = rng.randbytes(rng.randint(0, 40))  # a later fragment: payload bytes only
            return P.ETH_P_IP, P.ipv4(src, dst, proto, l4, ident=rng.randrange(65536), frag=word)
        if cat in ("frag6", "ext6"):
            dst, proto, dport = self._target(rng, 6)
            if rng.random() < 0.2:
                proto = 58
            src = self._client(rng, 6)
            if proto == 58:
                l4 = P.icmp(rng.choice((128, 129, 1, 2, 135)), 0, rng.randbytes(4), self._payload(rng))
            else:
                l4 = self._l4(rng, proto, rng.randrange(65536), dport, self._payload(rng))
            chain: list[tuple[int, bytes]] = []  # (this header's protocol number, header without next)
            n_ext = rng.randint(0, 2) if cat == "frag6" else rng.choice((1, 1, 2, 3, 4, 5, 6))
            for _ in range(n_ext):
                chain.append((rng.choice((0, 43, 60)), b""))
            if cat == "frag6" or rng.random() < 0.2:
                pos = rng.randint(0, len(chain))
                chain.insert(pos, (44, b""))
            nxt = proto
            body = l4
            later = False
            for kind, _ in reversed(chain):
                if kind == 44:
                    off = rng.choice((0, 0, rng.randint(1, 0x1FFF)))
                    later = later or off != 0
                    body = P.frag6(nxt, off, rng.random() < 0.7, rng.getrandbits(32)) + body
                else:
                    body = P.ext6(nxt, rng.choice((0, 0, 1, 2))) + body
                nxt = kind
            return P.ETH_P_IPV6, P.ipv6(src, dst, nxt, body, flow=rng.getrandbits(20))
        if cat in ("echo4", "echo6", "icmp_other"):
            fam = 4 if cat == "echo4" or (cat == "icmp_other" and rng.random() < 0.5) else 6
            dst = self._target(rng, fam)[0]
            src = self._client(rng, fam)
            if cat == "icmp_other":
                typ = rng.choice((0, 5, 13, 14, 17, 9, 10, 4, rng.randrange(256))) if fam == 4 else \
                    rng.choice((129, 133, 134, 135, 136, 143, 0, 5, 127, rng.randrange(256)))
            else:
                typ = 8 if fam == 4 else 128
            msg = P.icmp(typ, 0, rng.randbytes(4), self._payload(rng))
            if fam == 4:
                return P.ETH_P_IP, P.ipv4(src, dst, 1, msg, ident=rng.randrange(65536))
            return P.ETH_P_IPV6, P.ipv6(src, dst, 58, msg, flow=rng.getrandbits(20))
        if cat in ("icmp4_err", "icmp6_err"):
            fam = 4 if cat == "icmp4_err" else 6
            vip, proto, vport = self._target(rng, fam)
            client = self._client(rng, fam)
            cport = rng.randrange(65536)
            qsrc = vip if rng.random() < 0.85 else self._client(rng, fam)  # sometimes another address
            qproto = proto if rng.random() < 0.85 else rng.choice((1, 58, 17, 6, 47))
            ql4 = self._l4(rng, qproto, vport, cport, b"") if qproto in (6, 17) else rng.randbytes(8)
            ql4 = ql4[: rng.choice((8, 8, 20, len(ql4), rng.randint(0, 8)))]
            router = self._client(rng, fam)
            if fam == 4:
                qfrag = 0x4000 if rng.random() < 0.85 else rng.choice((0x2000, 0x0005, 0x2010))
                opts = rng.randbytes(4 * rng.randint(1, 3)) if rng.random() < 0.1 else b""
                quoted = P.ipv4(qsrc, client, qproto, ql4, frag=qfrag, options=opts,
                                tot_len=rng.choice((None, None, rng.randrange(65536))))
                typ = rng.choice((3, 3, 11, 12))
                msg = P.icmp(typ, rng.choice((4, 3, 1, 0)), rng.randbytes(4), quoted)
                return P.ETH_P_IP, P.ipv4(router, vip, 1, msg, ident=rng.randrange(65536))
            quoted = P.ipv6(qsrc, client, qproto, ql4, plen=rng.choice((None, None, rng.randrange(65536))))
            msg = P.icmp(rng.choice((1, 2, 2, 3, 4)), 0, rng.randbytes(4), quoted)
            return P.ETH_P_IPV6, P.ipv6(router, vip, 58, msg, flow=rng.getrandbits(20))
        if cat == "notvip":
            fam = rng.choice((4, 6))
            src = self._client(rng, fam)
            if fam == 4:
                dst = _rand_in(rng, *OTHER4, 32) if rng.random() < 0.7 else rng.randbytes(4)
                proto = rng.choice((6, 17, 1))
                l4 = self._l4(rng, proto, rng.randrange(65536), rng.randrange(65536), b"") if proto != 1 else \
                    P.icmp(8, 0, b"\0" * 4, b"")
                return P.ETH_P_IP, P.ipv4(src, dst, proto, l4)
            dst = _rand_in(rng, *OTHER6, 128)
            proto = rng.choice((6, 17, 58))
            l4 = self._l4(rng, proto, rng.randrange(65536), rng.randrange(65536), b"") if proto != 58 else \
                P.icmp(128, 0, b"\0" * 4, b"")
            return P.ETH_P_IPV6, P.ipv6(src, dst, proto, l4)
        if cat == "other_proto":
            fam = rng.choice((4, 6))
            dst = self._target(rng, fam)[0]
            proto = rng.choice((47, 50, 132, 4, 41, 0, 255, rng.randrange(256)))
            if fam == 4:
                return P.ETH_P_IP, P.ipv4(self._client(rng, 4), dst, proto, self._payload(rng))
            if proto in (0, 43, 60, 44):
                proto = 59  # extension headers are ext6's job; 59 = no next header
            return P.ETH_P_IPV6, P.ipv6(self._client(rng, 6), dst, proto, self._payload(rng))
        # nonip
        return rng.choice((P.ETH_P_ARP, 0x88CC, 0x0842, rng.randrange(65536))), rng.randbytes(rng.randrange(64))

    def make(self, seed: int, index: int) -> tuple[str, bytes, list[str]]:
        """(category, frame, mutations applied) for packet ``index`` of run ``seed``."""
        rng = rng_for(seed, index)
        cat = rng.choices(self._cats, self._weights)[0]
        ethertype, l3 = self._l3(rng, cat)
        r = rng.random()
        if r < 0.80:
            vlans: tuple[tuple[int, int], ...] = ()
        elif r < 0.93:
            vlans = ((P.ETH_P_8021Q, rng.randrange(65536)),)
        else:  # stacked tags (QinQ): the director only looks through one 802.1Q tag
            vlans = ((rng.choice((P.ETH_P_8021AD, P.ETH_P_8021Q)), rng.randrange(65536)),
                     (P.ETH_P_8021Q, rng.randrange(65536)))
        frame = P.eth(DIRECTOR_MAC, CLIENT_MAC, ethertype, vlans) + l3
        muts: list[str] = []
        if rng.random() < self.mutate_p:
            frame, muts = mutate(rng, frame, 14 + 4 * len(vlans))
        return cat, frame, muts
