"""Frames for the proxy: GUE from directors and peers carrying inner packets of both
families, with every GUE and outer field made wrong in turn, plus traffic that is not GUE
for this proxy at all (see docs/fuzzing.md for the category list).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.fuzz import packets as P
from tests.fuzz.gen_director import rng_for
from tests.fuzz.mutate import mutate


@dataclass(frozen=True)
class ProxyWorld:
    """Addresses the generator draws from (all packed); the environment makes them true."""

    proxy: bytes
    proxy_mac: bytes
    director: bytes
    peer: bytes
    unresolved: bytes  # on-link, no neighbour entry
    stranger: bytes  # neither director nor peer
    vip4: bytes
    vip6: bytes
    prefix4: tuple[int, int]  # a VIP prefix (network as int, prefix length)
    prefix6: tuple[int, int]
    port: int  # the VIPs' listening port
    closed_port: int  # a VIP port nothing listens on
    established4: tuple[tuple[bytes, int], ...]  # (client, client port) connected to vip4:port
    established6: tuple[tuple[bytes, int], ...]
    gue_port: int = 19523


def _rand_in(rng: random.Random, net: int, plen: int, bits: int) -> bytes:
    return (net | (rng.getrandbits(bits - plen) if plen < bits else 0)).to_bytes(bits // 8, "big")


INNER_KINDS = {
    "syn": 8, "established": 10, "unknown_tcp": 10, "udp": 6, "echo": 4, "ptb_known": 5, "ptb_unknown": 4,
    "ptb_udp": 2, "icmp_other": 3, "fragment": 4, "other_proto": 2, "bad_dst": 3, "self_dst": 2,
    "short_l4": 3,
}
GUE_ERRORS = ("version", "cbit", "flags", "hlen", "proto", "private", "next_hop", "hop_count", "truncated")
OUTER_ERRORS = ("fragment", "tot_len", "udp_len", "options", "udp_checksum", "stranger", "peer_fresh")
NOT_OURS = ("dport", "other_dst", "not_udp", "ipv6_outer", "vlan", "non_ip", "short")
CATEGORIES = (*(f"inner:{k}" for k in INNER_KINDS), *(f"gue:{e}" for e in GUE_ERRORS),
              *(f"outer:{e}" for e in OUTER_ERRORS), *(f"notours:{e}" for e in NOT_OURS))


class ProxyGen:
    """Makes (category, frame, mutations) for packet ``index``."""

    CATEGORIES = CATEGORIES

    def __init__(self, world: ProxyWorld, mutate_p: float = 0.3) -> None:
        self.w = world
        self.mutate_p = mutate_p
        w = world
        self.hop_palette = (w.peer, w.peer, w.proxy, w.unresolved, bytes([192, 0, 2, 50]), w.vip4,
                            bytes([198, 18, 0, 255]), bytes([203, 0, 113, 77]))
        self._kinds = tuple(INNER_KINDS)
        self._kind_w = tuple(INNER_KINDS.values())

    # -- inner packets ----------------------------------------------------------------------------

    def _client(self, rng: random.Random, fam: int) -> bytes:
        if fam == 4:
            return bytes([198, 51, 100, rng.randrange(256)])
        return bytes.fromhex("20010db8020000000000000000") + rng.randbytes(3)

    def _vip(self, rng: random.Random, fam: int) -> bytes:
        w = self.w
        if rng.random() < 0.8:
            return w.vip4 if fam == 4 else w.vip6
        return _rand_in(rng, *w.prefix4, 32) if fam == 4 else _rand_in(rng, *w.prefix6, 128)

    def _ip(self, fam: int, src: bytes, dst: bytes, proto: int, payload: bytes, rng: random.Random, **kw: int) -> bytes:
        if fam == 4:
            return P.ipv4(src, dst, proto, payload, ident=rng.randrange(65536), **kw)
        return P.ipv6(src, dst, proto, payload, flow=rng.getrandbits(20))

    def _tcp(self, rng: random.Random, sport: int, dport: int, flags: int | None = None) -> bytes:
        if flags is None:
            flags = rng.choice((P.TCP_ACK, P.TCP_ACK | P.TCP_PSH, P.TCP_FIN | P.TCP_ACK, P.TCP_RST,
                                P.TCP_SYN | P.TCP_ACK, P.TCP_RST | P.TCP_ACK, 0, P.TCP_ACK | P.TCP_SYN))
        return P.tcp(sport, dport, flags, seq=rng.getrandbits(32), ack=rng.getrandbits(32),
                     doff=rng.choice((5, 5, 5, 8)), payload=rng.randbytes(rng.choice((0, 0, 10, 100))))

    def inner(self, rng: random.Random, kind: str) -> bytes:
        w = self.w
        if kind == "short_l4":
            # An inner packet whose own length ends inside the header the decision reads, with
            # the rest of that header still following in the GUE payload.
            pkt = bytearray(self.inner(rng, rng.choice(("established", "unknown_tcp", "syn", "ptb_known",
                                                        "ptb_unknown", "ptb_udp", "echo"))))
            if pkt[0] >> 4 == 4:
                pkt[2:4] = ((pkt[0] & 15) * 4 + rng.randrange(0, 32)).to_bytes(2, "big")
            else:
                pkt[4:6] = rng.randrange(0, 56).to_bytes(2, "big")
            return bytes(pkt)
        fam = rng.choice((4, 6))
        vip = self._vip(rng, fam)
        client = self._client(rng, fam)
        icmp_proto = 1 if fam == 4 else 58
        if kind == "syn":
            return self._ip(fam, client, vip, 6, self._tcp(rng, rng.randrange(65536), w.port, P.TCP_SYN), rng)
        if kind == "established":
            est = w.established4 if fam == 4 else w.established6
            c, cport = rng.choice(est)
            vip = w.vip4 if fam == 4 else w.vip6
            return self._ip(fam, c, vip, 6, self._tcp(rng, cport, w.port), rng)
        if kind == "unknown_tcp":
            est = w.established4 if fam == 4 else w.established6
            if rng.random() < 0.3:
                client = rng.choice(est)[0]  # a known client on another port
            port = rng.choice((w.port, w.port, w.closed_port, rng.randrange(65536)))
            return self._ip(fam, client, vip, 6, self._tcp(rng, rng.randrange(65536), port), rng)
        if kind == "udp":
            return self._ip(fam, client, vip, 17, P.udp(rng.randrange(65536), 53, rng.randbytes(rng.randrange(40))),
                            rng)
        if kind == "echo":
            return self._ip(fam, client, rng.choice((vip, w.proxy)) if fam == 4 else vip, icmp_proto,
                            P.icmp(8 if fam == 4 else 128, 0, rng.randbytes(4), rng.randbytes(16)), rng)
        if kind in ("ptb_known", "ptb_unknown", "ptb_udp"):
            vip = w.vip4 if fam == 4 else w.vip6
            if kind == "ptb_known":
                c, cport = rng.choice(w.established4 if fam == 4 else w.established6)
            else:
                c, cport = client, rng.randrange(65536)
            sport = w.port if kind != "ptb_udp" else 53
            l4 = (P.tcp(sport, cport, P.TCP_ACK) if kind != "ptb_udp" else P.udp(sport, cport, b""))
            l4 = l4[: rng.choice((8, 8, 20))]
            router = self._client(rng, fam)
            if fam == 4:
                quoted = P.ipv4(vip, c, 6 if kind != "ptb_udp" else 17, l4, tot_len=rng.choice((None, 1500)))
                msg = P.icmp(3, 4, b"\0\0\x05\xdc", quoted)
            else:
                quoted = P.ipv6(vip, c, 6 if kind != "ptb_udp" else 17, l4, plen=rng.choice((None, 1460)))
                msg = P.icmp(2, 0, b"\0\0\x05\xdc", quoted)
            return self._ip(fam, router, vip, icmp_proto, msg, rng)
        if kind == "icmp_other":
            if fam == 4:
                typ, code = rng.choice(((3, 1), (3, 3), (11, 0), (0, 0), (5, 1), (3, 4)))
            else:
                typ, code = rng.choice(((1, 4), (3, 0), (129, 0), (135, 0), (4, 1)))
            return self._ip(fam, client, vip, icmp_proto, P.icmp(typ, code, rng.randbytes(4),
                                                                  rng.randbytes(rng.randrange(60))), rng)
        if kind == "fragment":
            if fam == 4:
                word = rng.choice((0x2000, 0x0001 | rng.randrange(0x2000), 0x2000 | rng.randrange(1, 0x2000)))
                proto = rng.choice((6, 17, 1))
                body = self._tcp(rng, rng.randrange(65536), w.port) if proto == 6 else rng.randbytes(24)
                return P.ipv4(client, vip, proto, body, frag=word, ident=rng.randrange(65536))
            body = P.frag6(rng.choice((6, 17, 58)), rng.choice((0, 1, 100)), rng.random() < 0.5,
                           rng.getrandbits(32)) + rng.randbytes(24)
            return P.ipv6(client, vip, 44, body)
        if kind == "other_proto":
            proto = rng.choice((47, 50, 132, 0, 60, 43)) if fam == 6 else rng.choice((47, 50, 132, 2, 4))
            return self._ip(fam, client, vip, proto, rng.randbytes(rng.randrange(8, 40)), rng)
        if kind == "bad_dst":
            dst = bytes([192, 0, 2, rng.randrange(256)]) if fam == 4 else \
                bytes.fromhex("20010db8099900000000000000000000")
            return self._ip(fam, client, dst, 6, self._tcp(rng, rng.randrange(65536), w.port), rng)
        # self_dst: to the proxy's own address (the director's health probe is echo; TCP too)
        return self._ip(4, self._client(rng, 4), w.proxy, 6, self._tcp(rng, rng.randrange(65536), 22), rng)

    # -- GUE and outer headers -------------------------------------------------------------------

    def _hops(self, rng: random.Random) -> tuple[bytes, ...]:
        n = rng.choices((0, 1, 2, 3, 8), (3, 10, 3, 2, 1))[0]
        return tuple(rng.choice(self.hop_palette) for _ in range(n))

    def frame(self, rng: random.Random, inner: bytes, *, src: bytes | None = None, hops: tuple[bytes, ...] | None = None,
              next_hop: int | None = None, gue_kw: dict | None = None, ip_kw: dict | None = None,
              udp_len: int | None = None, udp_check: bool = False, dport: int | None = None,
              dst: bytes | None = None) -> bytes:
        w = self.w
        if src is None:
            src = w.director if rng.random() < 0.85 else w.peer
        if hops is None:
            hops = self._hops(rng)
        if next_hop is None:
            if src == w.director:
                next_hop = 0 if rng.random() < 0.8 else rng.randint(0, len(hops))
            else:
                next_hop = rng.randint(1, max(1, len(hops)))
        proto = 4 if inner[0] >> 4 == 4 else 41
        kw = {"proto": proto, **(gue_kw or {})}
        payload = P.gue(inner, kw.pop("proto"), hops, next_hop, **kw)
        dst = w.proxy if dst is None else dst
        seg = P.udp(rng.randrange(0x8000, 0x10000), w.gue_port if dport is None else dport, payload, length=udp_len)
        if udp_check:
            c = P.udp_check4(src, dst, seg) if rng.random() < 0.8 else rng.randrange(1, 0x10000)
            seg = seg[:6] + c.to_bytes(2, "big") + seg[8:]
        ip = P.ipv4(src, dst, 17, seg, ttl=rng.choice((64, 17, 1, 255)), **(ip_kw or {}))
        return P.eth(w.proxy_mac, bytes.fromhex("020000000001"), P.ETH_P_IP) + ip

    def make(self, seed: int, index: int) -> tuple[str, bytes, list[str]]:
        """(category, frame, mutations applied) for packet ``index`` of run ``seed``."""
        rng = rng_for(seed, index)
        w = self.w
        group = rng.choices(("inner", "gue", "outer", "notours"), (60, 20, 12, 8))[0]
        kind = rng.choices(self._kinds, self._kind_w)[0]
        inner = self.inner(rng, kind)
        if group == "inner":
            cat = f"inner:{kind}"
            frame = self.frame(rng, inner, udp_check=rng.random() < 0.1)
        elif group == "gue":
            err = rng.choice(GUE_ERRORS)
            cat = f"gue:{err}"
            hops = self._hops(rng)
            gk: dict = {}
            nh = None
            if err == "version":
                gk["version"] = rng.randint(1, 3)
            elif err == "cbit":
                gk["cbit"] = 1
            elif err == "flags":
                gk["flags"] = rng.randrange(1, 0x10000)
            elif err == "hlen":
                gk["hlen"] = rng.choice([h for h in range(32) if h != len(hops) + 1])
            elif err == "proto":
                gk["proto"] = rng.choice((0, 6, 17, 47, 4 if inner[0] >> 4 == 6 else 41, rng.randrange(256)))
            elif err == "private":
                gk["private_type"] = rng.randrange(1, 0x10000)
            elif err == "next_hop":
                nh = rng.randint(len(hops) + 1, 255)
            elif err == "hop_count":
                hops = tuple(rng.choice(self.hop_palette) for _ in range(rng.randint(9, 12)))
                gk["hop_count"] = rng.choice((len(hops), rng.randint(9, 255)))
            frame = self.frame(rng, inner, hops=hops, next_hop=nh, gue_kw=gk)
            if err == "truncated":  # the outer lengths agree with a short GUE header
                cut = rng.randint(0, 12 + 4 * len(hops))
                ip_end = 14 + 20 + 8 + cut
                f = bytearray(frame[:ip_end])
                f[16:18] = (20 + 8 + cut).to_bytes(2, "big")
                f[38:40] = (8 + cut).to_bytes(2, "big")
                frame = bytes(f)
        elif group == "outer":
            err = rng.choice(OUTER_ERRORS)
            cat = f"outer:{err}"
            if err == "fragment":
                frame = self.frame(rng, inner, ip_kw={"frag": rng.choice((0x2000, 0x0001, 0x2100))})
            elif err == "tot_len":
                frame = self.frame(rng, inner, ip_kw={"tot_len": rng.randrange(65536)})
            elif err == "udp_len":
                frame = self.frame(rng, inner, udp_len=rng.randrange(65536))
            elif err == "options":
                frame = self.frame(rng, inner, ip_kw={"options": rng.randbytes(4 * rng.randint(1, 10))},
                                   udp_check=rng.random() < 0.5)
            elif err == "udp_checksum":
                frame = self.frame(rng, inner, udp_check=True)
            elif err == "stranger":
                frame = self.frame(rng, inner, src=rng.choice((w.stranger, bytes([203, 0, 113, 1]), w.proxy)))
            else:  # a peer sending a fresh encapsulation
                frame = self.frame(rng, inner, src=w.peer, next_hop=0)
        else:
            err = rng.choice(NOT_OURS)
            cat = f"notours:{err}"
            if err == "dport":
                frame = self.frame(rng, inner, dport=rng.choice((19522, 19524, 53, 6081, rng.randrange(65536))))
            elif err == "other_dst":
                frame = self.frame(rng, inner, dst=rng.choice((w.peer, w.vip4, bytes([198, 18, 0, 30]))))
            elif err == "not_udp":
                frame = self.frame(rng, inner)
                f = bytearray(frame)
                f[23] = rng.choice((6, 1, 47, 4))
                frame = bytes(f)
            elif err == "ipv6_outer":
                seg = P.udp(40000, w.gue_port, P.gue(inner, 4 if inner[0] >> 4 == 4 else 41, (), 0))
                frame = P.eth(w.proxy_mac, bytes(6), P.ETH_P_IPV6) + P.ipv6(
                    bytes.fromhex("20010db8000100000000000000000001"),
                    bytes.fromhex("20010db8000100000000000000000021"), 17, seg)
            elif err == "vlan":
                f = self.frame(rng, inner)
                frame = f[:12] + (0x81000000 | rng.randrange(4096)).to_bytes(4, "big") + f[12:]
            elif err == "non_ip":
                frame = P.eth(w.proxy_mac, bytes(6), rng.choice((P.ETH_P_ARP, 0x88CC, rng.randrange(65536)))) + \
                    rng.randbytes(rng.randrange(60))
            else:
                frame = self.frame(rng, inner)[: rng.randint(14, 60)]
        muts: list[str] = []
        if rng.random() < self.mutate_p:
            frame, muts = mutate(rng, frame, 14, {"gue_field": (_gue_field, 3), "hop": (_hop_swap, 1)})
        return cat, frame, muts


def _gue_field(rng: random.Random, f: bytearray, l3: int) -> None:
    """Corrupt a byte of the GUE base/private header (assumes a 20-byte outer IPv4 header)."""
    g = l3 + 20 + 8
    if g + 8 <= len(f):
        i = g + rng.randrange(8)
        f[i] = rng.choice((f[i] ^ (1 << rng.randrange(8)), rng.randrange(256), (f[i] + 1) & 0xFF))


def _hop_swap(rng: random.Random, f: bytearray, l3: int) -> None:
    """Overwrite hop 0's address with a random address of the test ranges (PLATFORM.md)."""
    h = l3 + 20 + 8 + 8
    if h + 4 <= len(f):
        f[h : h + 4] = rng.choice((b"\xc0\x00\x02", b"\xc6\x12\x00", b"\xc6\x33\x64", b"\xcb\x00\x71")) + \
            bytes([rng.randrange(256)])
