"""The real programs, loaded by the agent's own loaders, as fuzz targets.

* ``director``: bpf/director.c compiled by DirectorProgram with the director tests' tables
  (tests/dataplane/conftest.py: a /32 VIP with two TCP ports, a DNS VIP, a /28 and a /64
  prefix overlapping them, a table without backends) and a hash on the two addresses, so
  fragments of fragment-safe binds are forwarded. ``director-ports`` hashes all four fields
  (fragments are never forwarded, ICMP errors hash on the quoted ports).
* ``proxy``: bpf/proxy.c started by ProxyDataplane in a namespace built like a proxy host
  (tests/proxy/conftest.make_proxy_ns). The calling thread enters the namespace, because the
  program's socket and route lookups see the namespace of the test run's caller (only while
  the fuzzer runs: ``Target.scope``). The
  namespace holds exactly the sockets the model is told about: a listener on each VIP's
  port 80 and three established connections per family from the local client address;
  tcp_syncookies is 1 and no SYN ever reaches the listeners, so no cookie check succeeds.
  Frames are run as received on px0, so a forward to a neighbour on px0 is XDP_TX;
  ``proxy-redirect`` runs them as received on lo, so forwards are redirects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from glb_agent.dataplane.bpfcore import testrun
from tests.fuzz.harness import Target
from tests.fuzz.model import Outcome

LOOPBACK = 1  # ifindex of lo in every namespace
PROXY_VIP_PORT = 80
PROXY_CLOSED_PORT = 81
PREFIX4, PREFIX6 = "203.0.113.128/25", "2001:db8:300::/64"


class XdpRunner:
    """BPF_PROG_TEST_RUN of one loaded XDP program (as received on ``ingress_ifindex``)."""

    def __init__(self, prog_fd: int, counters: object, ingress_ifindex: int = 0) -> None:
        self.prog_fd = prog_fd
        self.ingress_ifindex = ingress_ifindex
        self._counters = counters

    def run(self, frame: bytes) -> tuple[int, bytes]:
        r = testrun.run(self.prog_fd, frame, ingress_ifindex=self.ingress_ifindex)
        return r.action, r.packet

    def counters(self) -> dict[str, int]:
        return self._counters()  # type: ignore[operator]


def _director_expect(o: Outcome) -> list[tuple[str, int]]:
    return [(f"{o.group}/{o.reason}_packets", 1), (f"{o.group}/{o.reason}_bytes", len(o.frame))]


def _proxy_expect(o: Outcome) -> list[tuple[str, int]]:
    return [("rx_gue", 1), (o.reason, 1)] if o.reason else []


# name -> (hash fields, BuildOptions features; "wide_rows": fill K-wide rows of 1..K used
# entries instead of the tests' (primary, secondary) pairs). Between them the variants cover
# upstream's row shape in the default 4-wide build and in a 2-wide one, variable rows with
# and without a hash-field migration, and the minimal build (no IPv6, VLAN or ICMP code).
DIRECTOR_VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "director": (("src_addr", "dst_addr"), {}),
    "director-ports": (("src_addr", "dst_addr", "src_port", "dst_port"), {"row_width": 2}),
    "director-v4": (("src_addr", "src_port"), {"ipv6": False, "vlan": False, "icmp": False, "mtu": 1400,
                                               "row_width": 8, "wide_rows": True}),
    "director-k": (("src_addr", "dst_addr"), {"alt_hash_fields": ("src_addr",), "wide_rows": True}),
}


def wide_rows(n_backends: int, seed: int, width: int) -> np.ndarray:
    """Send-order rows of 1..width distinct backends each, -1 padding the end."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n_backends, 65536)
    used = rng.integers(1, min(width, n_backends) + 1, 65536)
    rows = (first[:, None] + np.arange(width)[None, :]) % n_backends
    rows[np.arange(width)[None, :] >= used[:, None]] = -1
    return rows.astype(np.int64)


@contextlib.contextmanager
def director_target(name: str = "director") -> Iterator[Target]:
    """The director program built for variant ``name`` (DIRECTOR_VARIANTS)."""
    from glb_agent.dataplane.director import DirectorProgram, DirectorState
    from glb_agent.dataplane.director_maps import BuildOptions, compile_tables
    from tests.dataplane.conftest import GW_MAC, SOURCE_IP, SRC_MAC, standard_tables
    from tests.dataplane.director_ref import Director
    from tests.fuzz.director_model import DirectorModel
    from tests.fuzz.gen_director import DirectorGen

    fields, features = DIRECTOR_VARIANTS[name]
    features = dict(features)
    wide = features.pop("wide_rows", False)
    opts = BuildOptions(ipaddress.IPv4Address(SOURCE_IP), SRC_MAC, GW_MAC, fields,
                        **{"mtu": 1500, **features})  # type: ignore[arg-type]
    program = DirectorProgram(opts)
    state = DirectorState(program.map_fds, opts.max_tables, opts.max_binds)
    tables = standard_tables()
    if wide:
        tables = [(spec, None if rows is None else wide_rows(len(spec.backends), i, opts.row_width))
                  for i, (spec, rows) in enumerate(tables)]
    if not opts.ipv6:
        tables = [(dataclasses.replace(spec, binds=tuple(b for b in spec.binds if b.network.version == 4)), rows)
                  for spec, rows in tables]
    state.apply(compile_tables(tables, opts))

    def counters() -> dict[str, int]:
        return {f"{g}/{k}": v for g, cells in state.counters().items() for k, v in cells.items()}

    model = DirectorModel(Director(SOURCE_IP, SRC_MAC, GW_MAC, fields), tables, mtu=opts.mtu,
                          vlan=opts.vlan, ipv6=opts.ipv6, icmp=opts.icmp, alt_hash_fields=opts.alt_hash_fields)
    try:
        yield Target(name, DirectorGen([spec for spec, _ in tables]), model,
                     XdpRunner(program.prog_fd, counters), _director_expect)
    finally:
        with contextlib.suppress(Exception):
            program.bpf.cleanup()


def _connect(fam: int, client: str, vip: str, listener: socket.socket, keep: list[socket.socket]) -> int:
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.bind((client, 0))
    c.connect((vip, PROXY_VIP_PORT))
    s, _ = listener.accept()
    keep += [c, s]
    return c.getsockname()[1]


@contextlib.contextmanager
def proxy_target(name: str = "proxy") -> Iterator[Target]:
    """The proxy program in a fresh proxy-host namespace. ``proxy`` runs frames as received
    on px0 (forwards are XDP_TX); ``proxy-redirect`` as received on lo, so the same forwards
    leave through another interface than they came in on (XDP_REDIRECT)."""
    from glb_agent.dataplane.proxy import ProxyDataplane, ProxySettings
    from tests.fuzz.gen_proxy import ProxyGen, ProxyWorld
    from tests.fuzz.proxy_model import DIRECTOR_ROLE, PROXY_ROLE, ProxyHostModel, ProxyModel
    from tests.proxy.conftest import (
        CLIENT4,
        CLIENT6,
        DIRECTOR,
        PEER,
        PEER_MAC,
        PROXY,
        UNRESOLVED,
        VIP4,
        VIP6,
        make_proxy_ns,
    )
    from tests.proxy.support import netns
    from tests.support.netns import Lab, sh

    def packed(a: str) -> bytes:
        return ipaddress.ip_address(a).packed

    pin_root = Path("/sys/fs/bpf") / f"glbt-fuzz-{secrets.token_hex(3)}"
    sockets: list[socket.socket] = []
    with Lab() as lab:
        ns = make_proxy_ns(lab)
        settings = ProxySettings(interface="px0", address=PROXY, allowed_senders=(DIRECTOR,), peers=(PEER,),
                                 vips=(VIP4, VIP6), vip_prefixes=(PREFIX4, PREFIX6), pin_dir=pin_root / "px0")
        mac = bytes.fromhex(lab.mac(ns, "px0").replace(":", ""))
        ifindex = int(sh("cat", "/sys/class/net/px0/ifindex", ns=ns).stdout)
        dp = ProxyDataplane(settings)
        prog_fd = -1
        try:
            with netns(ns):
                # Namespace-local and discarded with it; 1 (the default) states the assumption.
                Path("/proc/sys/net/ipv4/tcp_syncookies").write_text("1")
                dp.start()
                prog_fd = dp.prog_fd()
                established: dict[int, list[tuple[bytes, int]]] = {4: [], 6: []}
                for fam, vip, client, v in ((socket.AF_INET, VIP4, CLIENT4, 4), (socket.AF_INET6, VIP6, CLIENT6, 6)):
                    lst = socket.socket(fam, socket.SOCK_STREAM)
                    lst.bind((vip, PROXY_VIP_PORT))
                    lst.listen(64)
                    sockets.append(lst)
                    for _ in range(3):
                        established[v].append((packed(client), _connect(fam, client, vip, lst, sockets)))
            world = ProxyWorld(
                proxy=packed(PROXY), proxy_mac=mac, director=packed(DIRECTOR), peer=packed(PEER),
                unresolved=packed(UNRESOLVED), stranger=packed("198.18.0.77"), vip4=packed(VIP4),
                vip6=packed(VIP6),
                prefix4=(int(ipaddress.ip_network(PREFIX4).network_address), 25),
                prefix6=(int(ipaddress.ip_network(PREFIX6).network_address), 64),
                port=PROXY_VIP_PORT, closed_port=PROXY_CLOSED_PORT,
                established4=tuple(established[4]), established6=tuple(established[6]))
            host = ProxyHostModel(
                address=world.proxy, mac=mac, gue_port=world.gue_port,
                senders={world.director: DIRECTOR_ROLE, world.peer: PROXY_ROLE},
                dsts=[ipaddress.ip_network(n) for n in (f"{VIP4}/32", f"{VIP6}/128", f"{PROXY}/32", PREFIX4,
                                                        PREFIX6)],
                established={(c, p, world.vip4 if len(c) == 4 else world.vip6, PROXY_VIP_PORT)
                             for c, p in established[4] + established[6]},
                listeners={(world.vip4, PROXY_VIP_PORT), (world.vip6, PROXY_VIP_PORT)},
                onlink=ipaddress.IPv4Network(f"{PROXY}/24", strict=False),
                neighbours={world.peer: bytes.fromhex(PEER_MAC.replace(":", ""))},
                local={world.proxy, world.vip4, packed(CLIENT4)},
                gateway_mac=bytes.fromhex(PEER_MAC.replace(":", "")),
                received_on_egress=name == "proxy",
            )
            runner = XdpRunner(prog_fd, dp.counters, ingress_ifindex=ifindex if name == "proxy" else LOOPBACK)
            yield Target(name, ProxyGen(world), ProxyModel(host), runner, _proxy_expect,
                         scope=lambda: netns(ns))
        finally:
            for s in sockets:
                s.close()
            if prog_fd >= 0:
                os.close(prog_fd)
            with contextlib.suppress(Exception), netns(ns):
                dp.stop()
            shutil.rmtree(pin_root, ignore_errors=True)


@contextlib.contextmanager
def target(name: str) -> Iterator[Target]:
    if name in PROXY_VARIANTS:
        with proxy_target(name) as t:
            yield t
    else:
        with director_target(name) as t:
            yield t


PROXY_VARIANTS = ("proxy", "proxy-redirect")
TARGETS = (*DIRECTOR_VARIANTS, *PROXY_VARIANTS)
