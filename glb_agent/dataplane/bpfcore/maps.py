"""A BPF map as a Python object (raw bytes in, raw bytes out), and the loaders' bookkeeping.

The data planes read and write maps only through pinned (or freshly loaded) file
descriptors, never through bcc's table objects: a restarted agent, ``status`` and the BGP
readiness check all work on a program some earlier process loaded. One class serves all of
them, so the same code path is exercised whether the program is new or adopted.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from glb_agent.dataplane.bpfcore import binding
from glb_agent.errors import InputError

META_BYTES = 32768  # value size of a bookkeeping map: u32 length + JSON


class Map:
    """A map opened by fd; owns the fd (close it, or use ``with``).

    Per-CPU maps (``percpu=True``) exchange values as one 8-byte-aligned slot per possible
    CPU; ``value_size`` is then the whole buffer and ``slot`` one CPU's part.
    """

    def __init__(self, fd: int, *, percpu: bool = False) -> None:
        self.fd = fd
        info = binding.map_info(fd)
        self.id = info.id
        self.key_size = info.key_size
        self.max_entries = info.max_entries
        self.slot = (info.value_size + 7) // 8 * 8 if percpu else info.value_size
        self.value_size = self.slot * binding.possible_cpus() if percpu else info.value_size

    @classmethod
    def open(cls, path: str | Path, *, percpu: bool = False) -> Map:
        return cls(binding.obj_get(path), percpu=percpu)

    def close(self) -> None:
        binding.close(self.fd)
        self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_key(self, key: bytes) -> bytes:
        if len(key) != self.key_size:
            raise ValueError(f"key of {len(key)} bytes for a map with {self.key_size}-byte keys")
        return key

    def lookup(self, key: bytes) -> bytes | None:
        return binding.map_lookup(self.fd, self._check_key(key), self.value_size)

    def update(self, key: bytes, value: bytes) -> None:
        if len(value) != self.value_size:
            raise ValueError(f"value of {len(value)} bytes, map wants {self.value_size}")
        binding.map_update(self.fd, self._check_key(key), value)

    def update_batch(self, keys: bytes, values: bytes, count: int) -> None:
        """``count`` packed keys and values at once (whole table generations)."""
        if len(keys) != count * self.key_size or len(values) != count * self.value_size:
            raise ValueError(f"batch of {count} does not match {len(keys)}/{len(values)} bytes")
        binding.map_update_batch(self.fd, keys, values, count)

    def delete(self, key: bytes) -> bool:
        return binding.map_delete(self.fd, self._check_key(key))

    def keys(self) -> Iterator[bytes]:
        """Every key; collected first, so callers may delete while iterating."""
        found: list[bytes] = []
        key = binding.map_next_key(self.fd, None, self.key_size)
        while key is not None and len(found) <= self.max_entries:  # a map changing under us
            found.append(key)
            key = binding.map_next_key(self.fd, key, self.key_size)
        return iter(found)

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def percpu_values(self, key: bytes) -> list[bytes]:
        """One value per possible CPU (per-CPU maps only); [] if the key is absent."""
        raw = self.lookup(key)
        if raw is None:
            return []
        return [raw[i : i + self.slot] for i in range(0, len(raw), self.slot)]


def encode_meta(meta: dict) -> bytes:
    """Bookkeeping as one map value: u32 length, then sorted compact JSON."""
    blob = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    if len(blob) > META_BYTES - 4:
        raise InputError(f"data-plane bookkeeping ({len(blob)} bytes) exceeds {META_BYTES - 4} bytes")
    return struct.pack("<I", len(blob)) + blob.ljust(META_BYTES - 4, b"\0")


def decode_meta(raw: bytes | None) -> dict:
    """The dict ``encode_meta`` stored; {} for an empty or unreadable value."""
    if not raw or len(raw) < 4:
        return {}
    (length,) = struct.unpack_from("<I", raw, 0)
    if length == 0 or length > len(raw) - 4:
        return {}
    try:
        meta = json.loads(raw[4 : 4 + length])
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}
