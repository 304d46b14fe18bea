"""Load, configure, adopt and remove the proxy's XDP program (bpf/proxy.c).

The program is attached through a pinned BPF link, with its maps and the loader's
bookkeeping (``meta``) pinned next to it under ``/sys/fs/bpf/glb/proxy/<ifname>``: the
attach-and-adopt model of ``bpfcore.pinned.PinnedXdp``, the same as the director's. The
link keeps the program attached after the agent exits, so ``glb-agent proxy apply`` can be
a one-shot command, and a later run can:

* adopt: the link runs the pinned program and meta says it was built from the same
  sources, so it is kept as is (no recompile, no traffic blip, counters continue) and only
  the maps are brought in line with the settings;
* replace: otherwise a fresh build is loaded, its maps filled, and it replaces the running
  program in one ``BPF_LINK_UPDATE`` (counters start from zero);
* report counters and stop, from any process, through the pins alone.

A proxy that an older release attached through netlink and pinned at
/sys/fs/bpf/glb-proxy/<ifname> is adopted in place (see ``PinnedXdp.migrate``).
This module knows nothing about glb.yml: callers (the CLI, tests) build ``ProxySettings``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from glb_agent.dataplane.bpfcore import binding
from glb_agent.dataplane.bpfcore.maps import Map
from glb_agent.dataplane.bpfcore.pinned import LINK_PIN, PROG_PIN, PinnedXdp, ensure_bpffs
from glb_agent.dataplane.bpfcore.xdp import XDP_MODES, Attachment, XdpMode, attached
from glb_agent.dataplane.reasons import proxy_counters
from glb_agent.errors import GlbError, InputError
from glb_agent.util import paths

BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"
SOURCE = BPF_DIR / "proxy.c"
HEADERS = tuple(sorted((BPF_DIR / "include").glob("*.h")))  # every header proxy.c may include
CFLAGS = ("-Wno-compare-distinct-pointer-types",)
PROG_NAME = "xdp_glb_proxy"
GUE_PORT = 19523

# Map names in proxy.c the loader fills; each is pinned as <pin_dir>/<name>. (Releases
# before ``meta`` kept the build digest in a proxy_build map; legacy adoption reads that pin.)
MAPS = ("proxy_cfg", "proxy_senders", "proxy_dsts", "proxy_stats")
LEGACY_BUILD = "proxy_build"

# proxy_defs.h constants the agent writes into maps.
SENDER_DIRECTOR, SENDER_PROXY = 1, 2
DST_VIP, DST_SELF = 1, 2

AnyAddress = IPv4Address | IPv6Address
AnyNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy data plane needs to know; independent of glb.yml.

    ``allowed_senders`` are the directors: they may send fresh encapsulations. ``peers`` are
    the other proxies of the fleet: they are accepted only as senders of second-chance
    forwards (next_hop >= 1), because that is the only GUE a proxy ever emits.
    ``vips``/``vip_prefixes`` are the inner destinations this proxy serves; the proxy's own
    ``address`` is always accepted too, for the director's GUE health probe.
    """

    interface: str
    address: IPv4Address
    allowed_senders: tuple[IPv4Address, ...]
    vips: tuple[AnyAddress, ...]
    gue_port: int = GUE_PORT
    pin_dir: Path = field(default=None)  # type: ignore[assignment]  # filled in __post_init__
    peers: tuple[IPv4Address, ...] = ()
    vip_prefixes: tuple[AnyNetwork, ...] = ()
    xdp_mode: XdpMode = "auto"

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        paths.check_ifname(self.interface)
        try:
            put("address", IPv4Address(self.address))
            put("allowed_senders", tuple(IPv4Address(a) for a in self.allowed_senders))
            put("peers", tuple(IPv4Address(a) for a in self.peers if IPv4Address(a) != self.address))
            put("vips", tuple(ipaddress.ip_address(a) for a in self.vips))
            put("vip_prefixes", tuple(ipaddress.ip_network(n) for n in self.vip_prefixes))
        except ValueError as exc:
            raise InputError(f"proxy settings: {exc}") from None
        if not 1 <= int(self.gue_port) <= 65535:
            raise InputError(f"gue_port {self.gue_port} is out of range 1-65535")
        if self.xdp_mode not in XDP_MODES:
            raise InputError(f"xdp_mode must be auto, native or generic, not {self.xdp_mode!r}")
        put("pin_dir", Path(self.pin_dir) if self.pin_dir else paths.pin_dir("proxy", self.interface))


def counter_names() -> tuple[str, ...]:
    """Counter names in index order, read from enum proxy_counter in glb_reasons.h."""
    return proxy_counters()


def build_digest() -> bytes:
    """Identifies a build: the sources and flags that produce the program."""
    h = hashlib.sha256()
    for path in (SOURCE, *HEADERS):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update("\0".join(CFLAGS).encode())
    return h.digest()


def _mapped(addr: AnyAddress) -> tuple[bytes, int]:
    """16-byte trie address and its base prefix length (IPv4 as ::ffff:a.b.c.d)."""
    if isinstance(addr, IPv4Address):
        return b"\0" * 10 + b"\xff\xff" + addr.packed, 96
    return addr.packed, 0


def desired_maps(s: ProxySettings) -> dict[str, dict[bytes, bytes]]:
    """The exact contents of the configuration maps for settings ``s`` (raw keys/values)."""
    cfg = s.address.packed + int(s.gue_port).to_bytes(2, "big") + b"\0\0"
    senders: dict[bytes, int] = {}
    for a in s.allowed_senders:
        senders[a.packed] = senders.get(a.packed, 0) | SENDER_DIRECTOR
    for a in s.peers:
        senders[a.packed] = senders.get(a.packed, 0) | SENDER_PROXY
    dsts: dict[bytes, int] = {}

    def add(net: AnyNetwork, kind: int) -> None:
        addr, base = _mapped(net.network_address)
        key = (base + net.prefixlen).to_bytes(4, "little") + addr
        dsts[key] = dsts.get(key, 0) | kind

    for v in s.vips:
        add(ipaddress.ip_network(v), DST_VIP)
    for n in s.vip_prefixes:
        add(n, DST_VIP)
    add(ipaddress.ip_network(s.address), DST_SELF)
    return {
        "proxy_cfg": {(0).to_bytes(4, "little"): cfg},
        "proxy_senders": {k: v.to_bytes(4, "little") for k, v in senders.items()},
        "proxy_dsts": {k: v.to_bytes(4, "little") for k, v in dsts.items()},
    }


def sync_map(m: Map, want: dict[bytes, bytes], *, array: bool = False) -> int:
    """Make map ``m`` hold exactly ``want``; returns how many entries changed.

    Arrays cannot delete entries (and list every index), so only their wanted slots are
    compared and written.
    """
    changed = 0
    present = set() if array else set(m.keys())
    for key in present - want.keys():
        m.delete(key)
        changed += 1
    for key, value in want.items():
        # An LPM lookup of an absent key may return a covering prefix, so only compare
        # values of keys that really exist.
        if (not array and key not in present) or m.lookup(key) != value:
            m.update(key, value)
            changed += 1
    return changed


@dataclass(frozen=True)
class StartReport:
    """What ``ProxyDataplane.start`` did: ``action`` is loaded, replaced or adopted."""

    action: str
    mode: str
    prog_id: int
    map_changes: int

    @property
    def changed(self) -> bool:
        return self.action != "adopted" or self.map_changes > 0


class ProxyDataplane:
    """The proxy XDP program on one interface, driven through its pins."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.pinned = PinnedXdp("proxy", settings.interface, settings.pin_dir, legacy_meta=self._legacy_meta)

    @property
    def pin_dir(self) -> Path:
        return self.settings.pin_dir

    def _legacy_meta(self, pin_dir: Path) -> dict:
        """An older release: netlink attachment, program pinned as ``prog``, digest in
        ``proxy_build``."""
        meta: dict = {"attach": "netlink", "interface": self.settings.interface}
        with_prog = binding.try_obj_get(pin_dir / PROG_PIN)
        if with_prog is not None:
            try:
                meta["prog_id"] = binding.prog_info(with_prog).id
            finally:
                binding.close(with_prog)
        try:
            att = attached(self.settings.interface)
        except (GlbError, OSError):
            att = None
        if att is not None and att.prog_id == meta.get("prog_id"):
            meta["mode"] = att.mode
        if (pin_dir / LEGACY_BUILD).exists():
            with Map.open(pin_dir / LEGACY_BUILD) as build:
                digest = build.lookup(b"\0\0\0\0")
            if digest:
                meta["prog_sig"] = digest.hex()
        return meta

    # -- inspection -------------------------------------------------------------------

    def pinned_prog_id(self) -> int | None:
        """The program our pins hold (attached or not), or None."""
        where = self.pinned.location()
        fd = binding.try_obj_get(where / LINK_PIN)
        if fd is not None:
            try:
                return binding.link_info(fd).prog_id
            finally:
                binding.close(fd)
        prog_id = self.pinned.read_meta(where).get("prog_id")
        return int(prog_id) if prog_id else None

    def prog_fd(self) -> int:
        """A new fd for the pinned program (tests and benches run it with BPF_PROG_TEST_RUN)."""
        prog_id = self.pinned_prog_id()
        if prog_id is None:
            raise GlbError(f"no proxy program pinned at {self.pin_dir}")
        return binding.prog_fd_by_id(prog_id)

    def _open_map(self, name: str, where: Path | None = None) -> Map:
        return self.pinned.open_map(name, percpu=name == "proxy_stats", where=where or self.pinned.location())

    def counters(self) -> dict[str, int]:
        """Per-CPU counters summed over CPUs, by name (see enum proxy_counter)."""
        names = counter_names()
        where = self.pinned.location()
        if not (where / "proxy_stats").exists():
            raise GlbError(f"no proxy data plane pinned at {self.pin_dir}")
        out: dict[str, int] = {}
        with self._open_map("proxy_stats", where) as stats:
            for i, name in enumerate(names):
                if i >= stats.max_entries:  # pinned by an older build with fewer counters
                    break
                out[name] = sum(int.from_bytes(v[:8], "little")
                                for v in stats.percpu_values(i.to_bytes(4, "little")))
        return out

    def status(self) -> dict[str, object]:
        """Attachment, pins and counters, for ``glb-agent proxy status``."""
        where = self.pinned.location()
        att, ours = self.pinned.running(where)
        pinned = self.pinned_prog_id()
        meta = self.pinned.read_meta(where)
        info: dict[str, object] = {
            "interface": self.settings.interface,
            "pin_dir": str(where),
            "attached": None if att is None else {"prog_id": att.prog_id, "mode": att.mode,
                                                  "name": att.name},
            "attach": meta.get("attach", "link"),
            "pinned_prog_id": pinned,
            "running": ours is not None,
        }
        if (where / "proxy_stats").exists():
            info["counters"] = self.counters()
            info["current_build"] = meta.get("prog_sig") == build_digest().hex()
        return info

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> StartReport:
        """Make the interface run this build with these settings (adopt, load or replace)."""
        s = self.settings
        with self.pinned.lock():
            ensure_bpffs()
            self.pinned.migrate()
            att, ours = self.pinned.running(self.pin_dir)
            if att is not None and ours is None and att.name != PROG_NAME:
                raise GlbError(
                    f"{s.interface} already runs XDP program {att.name!r} (id {att.prog_id}); "
                    "refusing to replace a program that is not the GLB proxy's"
                )
            meta = self.pinned.read_meta(self.pin_dir)
            if (att is not None and ours is not None and meta.get("prog_sig") == build_digest().hex()
                    and s.xdp_mode in ("auto", att.mode) and self._maps_complete()):
                changes = self._fill_from_pins()
                return StartReport("adopted", att.mode, att.prog_id, changes)
            try:
                return self._load_and_attach(att, ours is not None, meta)
            finally:
                self.pinned.close()

    def _maps_complete(self) -> bool:
        return all((self.pin_dir / n).exists() for n in MAPS)

    def _fill_from_pins(self) -> int:
        changes = 0
        for name, want in desired_maps(self.settings).items():
            with self._open_map(name, self.pin_dir) as m:
                changes += sync_map(m, want, array=name == "proxy_cfg")
        return changes

    def _load_and_attach(self, att: Attachment | None, ours: bool, meta: dict) -> StartReport:
        from bcc import BPF

        s = self.settings
        try:
            bpf = BPF(src_file=str(SOURCE).encode(), cflags=[f"-I{BPF_DIR / 'include'}", *CFLAGS])
            fn = bpf.load_func(PROG_NAME.encode(), BPF.XDP)
        except Exception as exc:  # bcc raises bare Exception on compile/verifier errors
            raise GlbError(f"loading {SOURCE.name} failed: {exc}") from exc
        maps = {name: Map(os.dup(bpf.get_table(name.encode()).map_fd), percpu=name == "proxy_stats")
                for name in MAPS}
        prog_fd = os.dup(fn.fd)
        try:
            changes = 0
            for name, want in desired_maps(s).items():
                changes += sync_map(maps[name], want, array=name == "proxy_cfg")
            self.pin_dir.mkdir(parents=True, exist_ok=True)
            new_meta = {"prog_sig": build_digest().hex(), "interface": s.interface,
                        "prog_id": binding.prog_info(prog_fd).id}
            if att is not None and ours and s.xdp_mode in ("auto", att.mode):
                self.pinned.swap(prog_fd)  # atomic: link update (or netlink replace, legacy)
                mode = att.mode
                new_meta["attach"] = meta.get("attach", "link")
            else:
                if att is not None:
                    # Ours in another mode (modes cannot coexist), or a stray GLB proxy no pin
                    # directory owns: it has to go first, a short gap.
                    self._detach(att, ours)
                mode = self.pinned.attach(prog_fd, s.xdp_mode)
                self.pinned.unpin((PROG_PIN, LEGACY_BUILD))
                new_meta["attach"] = "link"
            self.pinned.pin_maps({name: m.fd for name, m in maps.items()})
            self.pinned.write_meta(new_meta | {"mode": mode})
        finally:
            os.close(prog_fd)
            for m in maps.values():
                m.close()
            bpf.cleanup()
        return StartReport("replaced" if att else "loaded", mode, new_meta["prog_id"], changes)

    def _detach(self, att: Attachment, ours: bool) -> None:
        if ours and self.pinned.detach():
            self.pinned.drop_link()
            return
        try:
            binding.xdp_netlink_detach(att.ifindex, att.mode)
        except OSError as exc:
            raise GlbError(f"{self.settings.interface} runs a GLB proxy (id {att.prog_id}) that "
                           f"another pin directory owns; stop that one first ({exc})") from exc

    def stop(self) -> bool:
        """Detach our program (never a foreign one) and remove the pins; True if anything went."""
        with self.pinned.lock():
            return self.pinned.remove()
