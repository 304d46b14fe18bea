"""The userspace BPF layer (glb_agent.dataplane.bpfcore) against real kernel objects:
maps and programs loaded by bcc, XDP links on a veth in a throw-away namespace, pins in
a scratch bpffs directory."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.dataplane.bpfcore import binding, testrun
from glb_agent.dataplane.bpfcore.maps import Map
from glb_agent.dataplane.bpfcore.pinned import PinnedXdp
from glb_agent.dataplane.bpfcore.xdp import NoSuchInterface, attached
from glb_agent.lab.netns import inside
from tests.support.netns import Lab, bpf_unavailable

pytestmark = [pytest.mark.bpf]

PROGRAMS = b"""
BPF_HASH(kv, u32, u64, 64);
BPF_PERCPU_ARRAY(hits, u64, 4);
BPF_ARRAY(slots, u32, 8);

/* TX when received on anything but lo (a test run's default ingress), DROP for a first
   byte 0xdd, else PASS after rewriting the first byte to 0xee; counts runs in hits[0]. */
int xdp_probe(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    u32 zero = 0;
    u64 *hit = hits.lookup(&zero);
    if (hit)
        *hit += 1;
    if (ctx->ingress_ifindex != 1)
        return XDP_TX;
    unsigned char *p = data;
    if (p + 1 > (unsigned char *)end)
        return XDP_ABORTED;
    if (*p == 0xdd)
        return XDP_DROP;
    *p = 0xee;
    return XDP_PASS;
}

int xdp_other(struct xdp_md *ctx) { return XDP_PASS; }
"""


@pytest.fixture(scope="module")
def bpf() -> Iterator[object]:
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    from bcc import BPF

    b = BPF(text=PROGRAMS)
    yield b
    b.cleanup()


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    d = Path("/sys/fs/bpf") / f"glbt-core-{secrets.token_hex(3)}"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fd_of(bpf: object, name: bytes) -> int:
    return bpf[name].map_fd  # type: ignore[index]


def prog(bpf: object, name: bytes) -> int:
    from bcc import BPF

    return bpf.load_func(name, BPF.XDP).fd  # type: ignore[attr-defined]


def test_map_ops_on_a_real_hash_map(bpf: object) -> None:
    with Map(os.dup(fd_of(bpf, b"kv"))) as m:
        assert (m.key_size, m.value_size, m.max_entries) == (4, 8, 64)
        assert m.lookup(struct.pack("<I", 7)) is None
        for k in range(5):
            m.update(struct.pack("<I", k), struct.pack("<Q", k * 10))
        assert m.lookup(struct.pack("<I", 3)) == struct.pack("<Q", 30)
        assert sorted(struct.unpack("<I", k)[0] for k in m) == [0, 1, 2, 3, 4]
        for key in m:  # deleting while iterating is allowed (keys are collected first)
            assert m.delete(key)
        assert m.delete(struct.pack("<I", 3)) is False
        assert list(m.keys()) == []
        with pytest.raises(ValueError, match="4-byte keys"):
            m.lookup(b"\0" * 8)
        with pytest.raises(ValueError, match="map wants 8"):
            m.update(struct.pack("<I", 1), b"\0")
        info = binding.map_info(m.fd)
        assert info.name == "kv" and info.id == m.id


def test_batch_update_and_array_semantics(bpf: object) -> None:
    with Map(os.dup(fd_of(bpf, b"slots"))) as m:
        keys = b"".join(struct.pack("<I", i) for i in range(8))
        values = b"".join(struct.pack("<I", 100 + i) for i in range(8))
        m.update_batch(keys, values, 8)
        assert [struct.unpack("<I", v)[0] for _k, v in m.items()] == list(range(100, 108))
        with pytest.raises(OSError) as exc:  # an array has exactly max_entries slots
            binding.map_update(m.fd, struct.pack("<I", 8), struct.pack("<I", 1))
        assert exc.value.errno == errno.E2BIG
        with pytest.raises(ValueError):
            m.update_batch(keys, values[:-1], 8)


def test_prog_info_test_run_and_percpu_counters(bpf: object) -> None:
    fd = prog(bpf, b"xdp_probe")
    info = binding.prog_info(fd)
    assert info.name == "xdp_probe" and info.id > 0 and len(info.tag) == 8
    again = binding.prog_fd_by_id(info.id)
    try:
        assert binding.prog_info(again).id == info.id
    finally:
        binding.close(again)
    frame = bytes(64)
    res = testrun.run(fd, frame)
    assert res.action == testrun.XDP_PASS and res.action_name == "PASS"
    assert res.packet == b"\xee" + frame[1:]
    assert testrun.run(fd, b"\xdd" + frame[1:]).action == testrun.XDP_DROP
    assert testrun.time_per_packet(fd, frame, calls=20, rounds=3) > 0
    with Map(os.dup(fd_of(bpf, b"hits")), percpu=True) as hits:
        per_cpu = hits.percpu_values(struct.pack("<I", 0))
        assert len(per_cpu) == binding.possible_cpus()
        assert sum(struct.unpack("<Q", v)[0] for v in per_cpu) == 2 + 20 * 3  # the runs above, on whichever CPUs


def test_possible_cpus_matches_sysfs() -> None:
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    total = sum(int(b or a) - int(a) + 1 for a, _, b in (p.partition("-") for p in text.split(",")))
    assert binding.possible_cpus() == total
    binding.wait_for_readers()  # returns (after an RCU grace period)


def test_pins_and_meta(bpf: object, pin_dir: Path) -> None:
    binding.obj_pin(fd_of(bpf, b"kv"), pin_dir / "kv")
    fd = binding.obj_get(pin_dir / "kv")
    try:
        assert binding.map_info(fd).name == "kv"
    finally:
        binding.close(fd)
    assert binding.try_obj_get(pin_dir / "absent") is None
    with pytest.raises(OSError, match="open pin"):
        binding.obj_get(pin_dir / "absent")
    pinned = PinnedXdp("director", "eth0", pin_dir)
    assert pinned.read_meta() == {}
    pinned.write_meta({"a": 1, "nested": {"b": [1, 2]}})
    pinned.write_meta({"a": 2})  # replaces the whole document, same map
    assert pinned.read_meta() == {"a": 2}
    assert binding.map_info(binding.obj_get(pin_dir / "meta")).name == "glb_meta"


@pytest.fixture
def veth() -> Iterator[str]:
    """This thread inside a namespace whose eth0 is one end of a veth pair."""
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    with Lab() as lab:
        here = lab.ns("core")
        lab.link(here, "eth0", lab.ns("peer"), "eth0")
        with inside(here):
            yield here


def test_xdp_link_lifecycle_and_attached(bpf: object, veth: str) -> None:
    probe, other = prog(bpf, b"xdp_probe"), prog(bpf, b"xdp_other")
    ifindex = socket.if_nametoindex("eth0")
    assert attached("eth0") is None
    with pytest.raises(NoSuchInterface, match="nope0 does not exist"):
        attached("nope0")
    assert testrun.run(probe, bytes(64), ingress_ifindex=ifindex).action == testrun.XDP_TX
    link = binding.xdp_link_create(probe, ifindex, "native")
    try:
        att = attached("eth0")
        assert att is not None and (att.name, att.mode, att.ifindex) == ("xdp_probe", "native", ifindex)
        info = binding.link_info(link)
        assert (info.type, info.ifindex, info.prog_id) == (binding.BPF_LINK_TYPE_XDP, ifindex, att.prog_id)
        # A link cannot be replaced by another attachment, from netlink or a second link.
        with pytest.raises(OSError) as exc:
            binding.xdp_link_create(other, ifindex, "native")
        assert exc.value.errno == errno.EBUSY
        binding.link_update(link, other)
        assert attached(ifindex).name == "xdp_other"  # type: ignore[union-attr]
        assert binding.link_info(link).id == info.id
        binding.link_detach(link)
        assert attached("eth0") is None
        assert binding.link_info(link).ifindex == 0
    finally:
        binding.close(link)
    generic = binding.xdp_link_create(probe, ifindex, "generic")
    try:
        assert attached("eth0").mode == "generic"  # type: ignore[union-attr]
    finally:
        binding.close(generic)  # an unpinned link goes with its last fd
    assert attached("eth0") is None


def test_legacy_netlink_attachment_is_replaced_atomically(bpf: object, veth: str) -> None:
    from bcc import BPF

    probe, other = prog(bpf, b"xdp_probe"), prog(bpf, b"xdp_other")
    bpf.attach_xdp(b"eth0", bpf.load_func(b"xdp_probe", BPF.XDP), BPF.XDP_FLAGS_DRV_MODE)  # type: ignore[attr-defined]
    ifindex = socket.if_nametoindex("eth0")
    with pytest.raises(OSError) as exc:  # the kernel will not put a link over it
        binding.xdp_link_create(other, ifindex, "native")
    assert exc.value.errno == errno.EBUSY
    with pytest.raises(OSError):  # the expected old program is not the attached one
        binding.xdp_netlink_replace(ifindex, probe, "native", other)
    binding.xdp_netlink_replace(ifindex, other, "native", probe)
    assert attached("eth0").name == "xdp_other"  # type: ignore[union-attr]
    binding.xdp_netlink_detach(ifindex, "native")
    assert attached("eth0") is None
