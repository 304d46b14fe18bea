"""Structure-aware mutations shared by both generators.

Each mutator knows where the L3 header starts (``l3``), so it can aim at the fields parsers
trip over (version/IHL nibble, lengths, protocol, fragment word) as well as flip arbitrary
bits, cut the frame short or leave trailing garbage after the IP packet.
"""

from __future__ import annotations

import random
import struct

MIN_FRAME = 14


def _set(frame: bytearray, off: int, value: bytes) -> None:
    if off + len(value) <= len(frame):
        frame[off : off + len(value)] = value


def truncate(rng: random.Random, f: bytearray, l3: int) -> None:
    """Cut the frame anywhere after the Ethernet header (BPF_PROG_TEST_RUN refuses frames
    shorter than ETH_HLEN, and so does every NIC), usually inside the headers."""
    if len(f) <= MIN_FRAME:
        return
    hi = min(len(f), l3 + 80) if rng.random() < 0.8 else len(f)
    del f[rng.randrange(MIN_FRAME, max(hi, MIN_FRAME) + 1):]


def bitflip(rng: random.Random, f: bytearray, l3: int) -> None:
    if not f:
        return
    hi = min(len(f), l3 + 100) if rng.random() < 0.85 else len(f)
    i = rng.randrange(0, hi)
    f[i] ^= 1 << rng.randrange(8)


def byteset(rng: random.Random, f: bytearray, l3: int) -> None:
    if not f:
        return
    i = rng.randrange(0, min(len(f), l3 + 100))
    f[i] = rng.choice((0, 0xFF, 0x80, 0x7F, rng.randrange(256)))


def version_ihl(rng: random.Random, f: bytearray, l3: int) -> None:
    """A wrong version nibble or IHL (IPv4) / version (IPv6)."""
    if l3 < len(f):
        if rng.random() < 0.5:
            f[l3] = (f[l3] & 0x0F) | (rng.randrange(16) << 4)
        else:
            f[l3] = (f[l3] & 0xF0) | rng.randrange(16)


def length(rng: random.Random, f: bytearray, l3: int) -> None:
    """IPv4 total length / IPv6 payload length that lies (a little or a lot)."""
    if l3 >= len(f):
        return
    off = l3 + 2 if f[l3] >> 4 == 4 else l3 + 4
    if off + 2 > len(f):
        return
    (cur,) = struct.unpack_from("!H", f, off)
    new = rng.choice((0, 1, 19, 20, 39, 40, 0xFFFF, rng.randrange(0x10000),
                      (cur + rng.randint(-8, 8)) & 0xFFFF))
    _set(f, off, struct.pack("!H", new))


def protocol(rng: random.Random, f: bytearray, l3: int) -> None:
    if l3 >= len(f):
        return
    off = l3 + 9 if f[l3] >> 4 == 4 else l3 + 6
    _set(f, off, bytes([rng.choice((0, 1, 6, 17, 41, 43, 44, 47, 58, 60, 132, rng.randrange(256)))]))


def fragword(rng: random.Random, f: bytearray, l3: int) -> None:
    if l3 < len(f) and f[l3] >> 4 == 4:
        _set(f, l3 + 6, struct.pack("!H", rng.choice((0x2000, 0x0001, 0x2001, 0x1FFF, 0x8000,
                                                      rng.randrange(0x10000)))))


def trailing(rng: random.Random, f: bytearray, l3: int) -> None:
    """Bytes after the IP packet (Ethernet padding or garbage)."""
    f += rng.randbytes(rng.choice((1, 2, 4, 6, 16, rng.randrange(1, 64))))


MUTATORS = {
    "truncate": truncate,
    "bitflip": bitflip,
    "byteset": byteset,
    "version_ihl": version_ihl,
    "length": length,
    "protocol": protocol,
    "fragword": fragword,
    "trailing": trailing,
}
_NAMES = tuple(MUTATORS)
_WEIGHTS = (2, 5, 2, 1, 2, 1, 1, 1)


def mutate(rng: random.Random, frame: bytes, l3: int, extra: dict | None = None) -> tuple[bytes, list[str]]:
    """Apply 1-3 mutations (``extra`` adds generator-specific ones); returns the frame and names."""
    names = _NAMES
    weights: tuple[int, ...] = _WEIGHTS
    table = MUTATORS
    if extra:
        table = {**MUTATORS, **{k: v[0] for k, v in extra.items()}}
        names = tuple(table)
        weights = _WEIGHTS + tuple(v[1] for v in extra.values())
    f = bytearray(frame)
    done = []
    for name in rng.choices(names, weights, k=rng.choice((1, 1, 1, 2, 3))):
        table[name](rng, f, l3)
        done.append(name)
    return bytes(f), done
