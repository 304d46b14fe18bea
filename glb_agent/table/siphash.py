"""SipHash-2-4 in plain Python: the slow, obviously-correct yardstick.

The fast builders (C extension, numpy) compute the same function in unrolled, vectorised
forms that are hard to eyeball; tests pin them to this version, and this version to the
test vectors published with the SipHash paper. It is also what the director's packet hash
uses, so tools that predict where a flow lands can call it directly.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
KEY_SIZE = 16


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK


def initial_state(key: bytes) -> tuple[int, int, int, int]:
    """v0..v3 for a 16-byte key, before any message block."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"SipHash key must be {KEY_SIZE} bytes, got {len(key)}")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    return k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573


def round_head(v0: int, v1: int) -> tuple[int, int]:
    """A SipRound's first line, which reads only v0 and v1: in the first compression it does
    not depend on the message, so the XDP director gets it precomputed per key."""
    v0 = (v0 + v1) & _MASK
    return _rotl(v0, 32), _rotl(v1, 13) ^ v0


def round_tail(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    """The rest of a SipRound after round_head."""
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0, v1 = round_head(v0, v1)
    return round_tail(v0, v1, v2, v3)


def siphash24_int(key: bytes, msg: bytes) -> int:
    """The 64-bit result as the reference code returns it (before it is stored LE)."""
    v0, v1, v2, v3 = initial_state(key)
    full = len(msg) - len(msg) % 8
    # The last block carries the message length in its top byte (mod 256).
    tail = msg[full:] + bytes(7 - len(msg) % 8) + bytes([len(msg) & 0xFF])
    blocks = [msg[i : i + 8] for i in range(0, full, 8)] + [tail]
    for block in blocks:
        m = int.from_bytes(block, "little")
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m

    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def siphash24(key: bytes, msg: bytes) -> bytes:
    """The 8 output bytes, little-endian, exactly what upstream's ``siphash()`` writes."""
    return siphash24_int(key, msg).to_bytes(8, "little")
