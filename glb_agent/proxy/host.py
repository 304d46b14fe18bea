"""Make a host a GLB proxy, idempotently and reversibly.

What a proxy host needs besides the XDP program (docs/proxy-dataplane.md has the reasoning):

* every VIP bound on loopback (/32, /128; VIP prefixes as they are), so the decapsulated
  packet is local and its socket answers with the VIP as source (DSR);
* ``arp_ignore=1`` and ``arp_announce=2`` (``all`` and the interface): the VIPs live on
  lo, and the proxy must neither answer ARP for them nor use them as ARP source, or it
  would steal the VIP from the routers/directors on the LAN;
* ``rp_filter=2`` (loose) on the interface: decapsulated packets show up on the interface
  with the *client's* source address. Strict mode drops them whenever the route back to
  that client is not via this interface (multi-homed hosts, asymmetric routes); loose mode
  still drops sources with no route at all. The effective value is max(all, interface), so
  setting the interface to 2 is enough and leaves ``all`` alone;
* ``net.ipv4.conf.lo.forwarding=1``: bpf_fib_lookup() only works through an interface with
  forwarding on; the program looks routes up "from loopback", where forwarding is inert,
  so the real interface never becomes a router;
* a *managed* neighbour entry for the next hop towards every other proxy: the kernel keeps
  it resolved on its own, so a second-chance forward never finds an unresolved neighbour.

Everything this module changes is recorded in a small JSON state file (/run/glb/proxy by
default: addresses on lo and sysctl values do not survive a reboot either). ``apply`` run
twice changes nothing the second time; ``stop`` puts back only what ``apply`` changed —
a sysctl is restored only if it still holds the value we wrote.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

from glb_agent.dataplane.proxy import ProxyDataplane, ProxySettings
from glb_agent.errors import GlbError
from glb_agent.util import paths
from glb_agent.util.files import write_atomic

DEFAULT_STATE_DIR = paths.proxy_state_dir()
NTF_EXT_MANAGED = 1  # NDA_FLAGS_EXT bit: the kernel keeps the entry resolved
NUD_NONE = 0


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str:
    return _sysctl_path(name).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    _sysctl_path(name).write_text(value)


@dataclass
class _State:
    """What apply changed, so stop can undo exactly that."""

    addresses: list[str] = field(default_factory=list)  # "addr/prefixlen" added on lo
    sysctls: dict[str, str] = field(default_factory=dict)  # name -> value before us
    written: dict[str, str] = field(default_factory=dict)  # name -> value we wrote
    neighbours: list[dict[str, object]] = field(default_factory=list)  # {dst, ifindex}

    @classmethod
    def load(cls, path: Path) -> _State:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: raw[k] for k in ("addresses", "sysctls", "written", "neighbours") if k in raw})
        except (ValueError, TypeError) as exc:
            raise GlbError(f"{path}: unreadable proxy state ({exc}); "
                           "remove it after checking the host") from exc

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")

    def empty(self) -> bool:
        return not (self.addresses or self.sysctls or self.neighbours)


class ProxyHost:
    """One proxy interface and everything around it on this host (current network namespace)."""

    def __init__(self, settings: ProxySettings, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.settings = settings
        paths.migrate_proxy_state(Path(state_dir), settings.interface)  # from /run/glb-agent/proxy
        self.state_path = Path(state_dir) / f"{settings.interface}.json"
        self.dataplane = ProxyDataplane(settings)

    # -- what we want ---------------------------------------------------------------------

    def wanted_sysctls(self) -> dict[str, str]:
        ifname = self.settings.interface.replace(".", "/")  # sysctl's escape for VLAN names
        want = {}
        for scope in ("all", ifname):
            want[f"net.ipv4.conf.{scope}.arp_ignore"] = "1"
            want[f"net.ipv4.conf.{scope}.arp_announce"] = "2"
        want[f"net.ipv4.conf.{ifname}.rp_filter"] = "2"
        want["net.ipv4.conf.lo.forwarding"] = "1"
        return want

    def wanted_addresses(self) -> list[str]:
        s = self.settings
        nets = [ipaddress.ip_network(v) for v in s.vips] + list(s.vip_prefixes)
        return sorted({f"{n.network_address}/{n.prefixlen}" for n in nets})

    # -- apply / stop ---------------------------------------------------------------------

    def apply(self) -> list[str]:
        """Converge the host to the settings; returns the changes made (empty: nothing to do)."""
        from pyroute2 import IPRoute

        state = _State.load(self.state_path)
        changes: list[str] = []
        try:
            with IPRoute() as ipr:
                if not ipr.link_lookup(ifname=self.settings.interface):
                    raise GlbError(f"interface {self.settings.interface} does not exist")
                # ARP behaviour first: a VIP must never be announced, not even for a moment.
                changes += self._apply_sysctls(state)
                report = self.dataplane.start()
                if report.changed:
                    changes.append(f"xdp: {report.action} program {report.prog_id} ({report.mode}), "
                                   f"{report.map_changes} map entries updated")
                changes += self._apply_neighbours(ipr, state)
                changes += self._apply_addresses(ipr, state)
        finally:
            if not state.empty() or self.state_path.exists():
                state.save(self.state_path)
        return changes

    def stop(self) -> list[str]:
        """Undo what apply did: program, VIPs, neighbours, sysctls (only if still ours)."""
        from pyroute2 import IPRoute

        state = _State.load(self.state_path)
        changes: list[str] = []
        if self.dataplane.stop():
            changes.append(f"xdp: detached from {self.settings.interface}, pins removed")
        with IPRoute() as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            for cidr in list(state.addresses):
                addr, plen = cidr.split("/")
                with contextlib.suppress(Exception):  # already gone is fine
                    ipr.addr("del", index=lo, address=addr, prefixlen=int(plen))
                    changes.append(f"lo: removed {cidr}")
                state.addresses.remove(cidr)
            for n in list(state.neighbours):
                with contextlib.suppress(Exception):
                    ipr.neigh("del", dst=n["dst"], ifindex=n["ifindex"])
                    changes.append(f"neighbour: removed managed entry {n['dst']}")
                state.neighbours.remove(n)
        for name, original in list(state.sysctls.items()):
            with contextlib.suppress(FileNotFoundError):  # interface gone: nothing to restore
                if read_sysctl(name) == state.written.get(name):
                    write_sysctl(name, original)
                    changes.append(f"sysctl: {name} restored to {original}")
            state.sysctls.pop(name)
            state.written.pop(name, None)
        self.state_path.unlink(missing_ok=True)
        return changes

    def status(self) -> dict[str, object]:
        """Program, counters, and whether the host still matches the settings."""
        info = self.dataplane.status()
        info["sysctls_ok"] = {k: read_sysctl(k) == v for k, v in self.wanted_sysctls().items()}
        info["state_file"] = str(self.state_path) if self.state_path.exists() else None
        return info

    # -- pieces ---------------------------------------------------------------------------

    def _apply_sysctls(self, state: _State) -> list[str]:
        changes = []
        for name, value in self.wanted_sysctls().items():
            try:
                current = read_sysctl(name)
            except FileNotFoundError as exc:
                raise GlbError(f"sysctl {name} does not exist") from exc
            if current == value:
                continue
            state.sysctls.setdefault(name, current)  # keep the value from before our first change
            write_sysctl(name, value)
            state.written[name] = value
            changes.append(f"sysctl: {name} {current} -> {value}")
        return changes

    def _apply_addresses(self, ipr: object, state: _State) -> list[str]:
        lo = ipr.link_lookup(ifname="lo")[0]  # type: ignore[attr-defined]
        present = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                   for a in ipr.get_addr(index=lo)}  # type: ignore[attr-defined]
        want = self.wanted_addresses()
        changes = []
        for cidr in want:
            if cidr in present:
                continue
            addr, plen = cidr.split("/")
            try:
                ipr.addr("add", index=lo, address=addr, prefixlen=int(plen))  # type: ignore[attr-defined]
            except Exception as exc:
                raise GlbError(f"cannot add {cidr} to lo: {exc}") from exc
            state.addresses.append(cidr)
            changes.append(f"lo: added {cidr}")
        for cidr in [c for c in state.addresses if c not in want]:  # VIPs we added, no longer wanted
            addr, plen = cidr.split("/")
            with contextlib.suppress(Exception):
                ipr.addr("del", index=lo, address=addr, prefixlen=int(plen))  # type: ignore[attr-defined]
            state.addresses.remove(cidr)
            changes.append(f"lo: removed {cidr}")
        return changes

    def _next_hop(self, ipr: object, peer: ipaddress.IPv4Address) -> tuple[str, int] | None:
        """(neighbour address, ifindex) the kernel uses to reach ``peer``."""
        try:
            route = ipr.route("get", dst=str(peer))[0]  # type: ignore[attr-defined]
        except Exception:
            return None
        oif = route.get_attr("RTA_OIF")
        if route["type"] != 1 or not oif:  # not a unicast route (local, unreachable, ...)
            return None
        return route.get_attr("RTA_GATEWAY") or str(peer), oif

    def _apply_neighbours(self, ipr: object, state: _State) -> list[str]:
        wanted: dict[tuple[str, int], str] = {}
        for peer in self.settings.peers:
            hop = self._next_hop(ipr, peer)
            if hop is not None:
                wanted.setdefault(hop, str(peer))
        changes = []
        managed = set()
        for n in ipr.get_neighbours(family=2):  # type: ignore[attr-defined]
            if (n.get_attr("NDA_FLAGS_EXT") or 0) & NTF_EXT_MANAGED:
                managed.add((n.get_attr("NDA_DST"), n["ifindex"]))
        for (dst, ifindex), peer in sorted(wanted.items()):
            if (dst, ifindex) in managed:
                continue
            try:
                ipr.neigh("replace", dst=dst, ifindex=ifindex, state=NUD_NONE,  # type: ignore[attr-defined]
                          NDA_FLAGS_EXT=NTF_EXT_MANAGED)
            except Exception as exc:
                raise GlbError(f"cannot add a managed neighbour {dst} (towards proxy {peer}): {exc}") from exc
            state.neighbours.append({"dst": dst, "ifindex": ifindex})
            changes.append(f"neighbour: managed entry for {dst} (towards proxy {peer})")
        for n in [n for n in state.neighbours if (n["dst"], n["ifindex"]) not in wanted]:
            with contextlib.suppress(Exception):
                ipr.neigh("del", dst=n["dst"], ifindex=n["ifindex"])  # type: ignore[attr-defined]
            state.neighbours.remove(n)
            changes.append(f"neighbour: removed managed entry {n['dst']}")
        return changes

