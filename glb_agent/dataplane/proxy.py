"""Load, configure, adopt and remove the proxy's XDP program (bpf/proxy.c).

The program stays attached after the agent exits (an XDP attachment holds its own
reference), so ``glb-agent proxy apply`` can be a one-shot command. Every map and the
program are pinned under ``pin_dir`` so that a later run can:

* adopt: the attached program is the pinned one and was built from the same source, so it
  is kept as is (no recompile, no traffic blip, counters continue) and only the maps are
  brought in line with the settings;
* replace: otherwise a fresh build is loaded, its maps filled, and it atomically replaces
  the attached program in the same XDP mode (counters start from zero);
* report counters and stop, from any process, through the pins alone.

This module knows nothing about glb.yml: callers (the CLI, tests) build ``ProxySettings``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shutil
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Literal

from glb_agent.dataplane import proxy_pins as pins
from glb_agent.dataplane.reasons import proxy_counters
from glb_agent.errors import GlbError, InputError

BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"
SOURCE = BPF_DIR / "proxy.c"
HEADERS = tuple(sorted((BPF_DIR / "include").glob("*.h")))  # every header proxy.c may include
CFLAGS = ("-Wno-compare-distinct-pointer-types",)
PROG_NAME = "xdp_glb_proxy"
DEFAULT_PIN_ROOT = Path("/sys/fs/bpf/glb-proxy")
GUE_PORT = 19523

# Map names in proxy.c; each is pinned as <pin_dir>/<name>, the program as <pin_dir>/prog.
MAPS = ("proxy_cfg", "proxy_senders", "proxy_dsts", "proxy_stats", "proxy_build")
PROG_PIN = "prog"

# proxy_defs.h constants the agent writes into maps.
SENDER_DIRECTOR, SENDER_PROXY = 1, 2
DST_VIP, DST_SELF = 1, 2

XdpMode = Literal["auto", "native", "generic"]
_MODE_FLAGS = {"native": pins.XDP_FLAGS_DRV_MODE, "generic": pins.XDP_FLAGS_SKB_MODE}
# IFLA_XDP_ATTACHED values, as numbers or as pyroute2's names for them.
_ATTACHED_MODES = {1: "native", 2: "generic", 3: "offload", 4: "multi",
                   "xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload", "xdpmulti": "multi"}

AnyAddress = IPv4Address | IPv6Address
AnyNetwork = IPv4Network | IPv6Network


def _ifname_ok(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_.@:-]{1,15}", name))


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

        if not _ifname_ok(self.interface):
            raise InputError(f"{self.interface!r} is not a valid interface name")
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
        if self.xdp_mode not in ("auto", "native", "generic"):
            raise InputError(f"xdp_mode must be auto, native or generic, not {self.xdp_mode!r}")
        put("pin_dir", Path(self.pin_dir) if self.pin_dir else DEFAULT_PIN_ROOT / self.interface)


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
        "proxy_build": {(0).to_bytes(4, "little"): build_digest()},
    }


def sync_map(m: pins.Map, want: dict[bytes, bytes], *, array: bool = False) -> int:
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
class Attachment:
    """The XDP program currently attached to an interface."""

    prog_id: int
    mode: str
    name: str


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


def _ifindex(ipr: object, interface: str) -> int:
    idx = ipr.link_lookup(ifname=interface)  # type: ignore[attr-defined]
    if not idx:
        raise GlbError(f"interface {interface} does not exist")
    return idx[0]


def query_attachment(interface: str) -> tuple[int, Attachment | None]:
    """(ifindex, the XDP program attached to ``interface`` or None), in this netns."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = _ifindex(ipr, interface)
        link = ipr.get_links(idx)[0]
    xdp = link.get_attr("IFLA_XDP")
    if xdp is None:
        return idx, None
    mode = xdp.get_attr("IFLA_XDP_ATTACHED") or 0
    prog_id = xdp.get_attr("IFLA_XDP_PROG_ID") or 0
    if not mode or not prog_id:
        return idx, None
    try:
        fd = pins.prog_fd_by_id(prog_id)
    except OSError:
        name = "?"
    else:
        try:
            name = pins.prog_info(fd).name
        finally:
            os.close(fd)
    return idx, Attachment(prog_id=prog_id, mode=_ATTACHED_MODES.get(mode, str(mode)), name=name)


class ProxyDataplane:
    """The proxy XDP program on one interface, driven through its pins."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings

    @property
    def pin_dir(self) -> Path:
        return self.settings.pin_dir

    # -- inspection -------------------------------------------------------------------

    def pinned_prog_id(self) -> int | None:
        path = self.pin_dir / PROG_PIN
        if not path.exists():
            return None
        fd = pins.obj_get(path)
        try:
            return pins.prog_info(fd).prog_id
        finally:
            os.close(fd)

    def _pins_complete(self) -> bool:
        return all((self.pin_dir / n).exists() for n in (PROG_PIN, *MAPS))

    def _open_map(self, name: str) -> pins.Map:
        return pins.Map.open(self.pin_dir / name, percpu=name == "proxy_stats")

    def counters(self) -> dict[str, int]:
        """Per-CPU counters summed over CPUs, by name (see enum proxy_counter)."""
        names = counter_names()
        if not (self.pin_dir / "proxy_stats").exists():
            raise GlbError(f"no proxy data plane pinned at {self.pin_dir}")
        out: dict[str, int] = {}
        with self._open_map("proxy_stats") as stats:
            for i, name in enumerate(names):
                if i >= stats.max_entries:  # pinned by an older build with fewer counters
                    break
                out[name] = sum(int.from_bytes(v[:8], "little")
                                for v in stats.percpu_values(i.to_bytes(4, "little")))
        return out

    def status(self) -> dict[str, object]:
        """Attachment, pins and counters, for ``glb-agent proxy status``."""
        _idx, att = query_attachment(self.settings.interface)
        pinned = self.pinned_prog_id()
        info: dict[str, object] = {
            "interface": self.settings.interface,
            "pin_dir": str(self.pin_dir),
            "attached": None if att is None else {"prog_id": att.prog_id, "mode": att.mode,
                                                  "name": att.name},
            "pinned_prog_id": pinned,
            "running": att is not None and pinned == att.prog_id,
        }
        if pinned is not None:
            info["counters"] = self.counters()
            with self._open_map("proxy_build") as build:
                info["current_build"] = build.lookup(b"\0\0\0\0") == build_digest()
        return info

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> StartReport:
        """Make the interface run this build with these settings (adopt, load or replace)."""
        s = self.settings
        ifindex, att = query_attachment(s.interface)
        if att is not None and att.name != PROG_NAME:
            raise GlbError(
                f"{s.interface} already runs XDP program {att.name!r} (id {att.prog_id}); "
                "refusing to replace a program that is not the GLB proxy's"
            )
        if att is not None and self._adoptable(att):
            changes = self._fill_from_pins()
            return StartReport("adopted", att.mode, att.prog_id, changes)
        return self._load_and_attach(ifindex, att)

    def _adoptable(self, att: Attachment) -> bool:
        if not self._pins_complete() or self.pinned_prog_id() != att.prog_id:
            return False
        if self.settings.xdp_mode not in ("auto", att.mode):
            return False
        with self._open_map("proxy_build") as build:
            return build.lookup(b"\0\0\0\0") == build_digest()

    def _fill_from_pins(self) -> int:
        changes = 0
        for name, want in desired_maps(self.settings).items():
            with self._open_map(name) as m:
                changes += sync_map(m, want, array=name in ("proxy_cfg", "proxy_build"))
        return changes

    def _load_and_attach(self, ifindex: int, att: Attachment | None) -> StartReport:
        from bcc import BPF

        s = self.settings
        try:
            bpf = BPF(src_file=str(SOURCE).encode(), cflags=[f"-I{BPF_DIR / 'include'}", *CFLAGS])
            fn = bpf.load_func(PROG_NAME.encode(), BPF.XDP)
        except Exception as exc:  # bcc raises bare Exception on compile/verifier errors
            raise GlbError(f"loading {SOURCE.name} failed: {exc}") from exc
        maps = {name: pins.Map(os.dup(bpf.get_table(name.encode()).map_fd), percpu=name == "proxy_stats")
                for name in MAPS}
        prog_fd = os.dup(fn.fd)
        try:
            changes = 0
            for name, want in desired_maps(s).items():
                changes += sync_map(maps[name], want, array=name in ("proxy_cfg", "proxy_build"))
            mode = self._attach(ifindex, prog_fd, att)
            self._repin(prog_fd, maps)
            prog_id = pins.prog_info(prog_fd).prog_id
        finally:
            os.close(prog_fd)
            for m in maps.values():
                m.close()
            bpf.cleanup()
        return StartReport("replaced" if att else "loaded", mode, prog_id, changes)

    def _attach(self, ifindex: int, prog_fd: int, att: Attachment | None) -> str:
        """Attach in the requested mode; 'auto' keeps the current mode or tries native first."""
        want = self.settings.xdp_mode
        if att is not None and att.mode in _MODE_FLAGS and want in ("auto", att.mode):
            pins.xdp_attach(ifindex, prog_fd, _MODE_FLAGS[att.mode])  # atomic replace
            return att.mode
        if att is not None:
            # Native and generic cannot coexist: switching modes needs a detach first.
            pins.xdp_detach(ifindex, _MODE_FLAGS.get(att.mode, 0))
        order = ["native", "generic"] if want == "auto" else [want]
        errors = []
        for mode in order:
            try:
                pins.xdp_attach(ifindex, prog_fd, _MODE_FLAGS[mode])
                return mode
            except OSError as exc:
                errors.append(f"{mode}: {exc.strerror}")
        raise GlbError(f"cannot attach XDP to {self.settings.interface}: {'; '.join(errors)}")

    def _repin(self, prog_fd: int, maps: dict[str, pins.Map]) -> None:
        self._unpin()
        self.pin_dir.mkdir(parents=True, exist_ok=True)
        pins.obj_pin(prog_fd, self.pin_dir / PROG_PIN)
        for name, m in maps.items():
            pins.obj_pin(m.fd, self.pin_dir / name)

    def _unpin(self) -> None:
        if not self.pin_dir.exists():
            return
        for child in self.pin_dir.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def stop(self) -> bool:
        """Detach our program (never a foreign one) and remove the pins; True if anything went."""
        removed = False
        try:
            ifindex, att = query_attachment(self.settings.interface)
        except GlbError:
            ifindex, att = 0, None  # the interface is gone, and the attachment with it
        pinned = self.pinned_prog_id() if (self.pin_dir / PROG_PIN).exists() else None
        if att is not None and (att.prog_id == pinned or att.name == PROG_NAME):
            pins.xdp_detach(ifindex, _MODE_FLAGS.get(att.mode, 0))
            removed = True
        if self.pin_dir.exists():
            self._unpin()
            self.pin_dir.rmdir()
            removed = True
            parent = self.pin_dir.parent
            if parent == DEFAULT_PIN_ROOT and parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
        return removed
