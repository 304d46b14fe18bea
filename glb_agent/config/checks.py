"""Rules that relate several places of the document.

Each returns ``(path, message)`` pairs pointing at the exact offending entry (usually the
second occurrence, naming the first), so the loader can print ``file:line`` for each.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from glb_agent.config.model import (
    _PASSWORD_RE,
    PASSWORD_CHARS,
    TCP_MD5SIG_MAXKEYLEN,
    BgpPeer,
    GlbConfig,
    PortRange,
)
from glb_agent.config.yamlsrc import Locator, PathElem
from glb_agent.table.spec import UPSTREAM_MAX_BINDS

Issue = tuple[tuple[PathElem, ...], str]

MAX_BACKENDS = 4096
GUE_MAX_HOPS = 8  # GLB_GUE_MAX_HOPS in bpf/include/glb_gue.h: proxies after the destination


def _unique(items: list, key, section: str, field: str, loc: Locator) -> Iterator[Issue]:
    seen: dict[object, int] = {}
    for i, item in enumerate(items):
        value = key(item)
        if value in seen:
            first = seen[value]
            yield ((section, i, field),
                   f"duplicate {field} {value} (first at line {loc.line_of((section, first))})")
        else:
            seen[value] = i


def check_names_and_hosts(cfg: GlbConfig, loc: Locator) -> Iterator[Issue]:
    for section in ("directors", "proxies", "services"):
        yield from _unique(getattr(cfg, section), lambda x: x.name, section, "name", loc)
    seen_peer: dict[str, int] = {}
    for i, peer in enumerate(cfg.bgp.peers):
        if peer.name in seen_peer:
            yield (("bgp", "peers", i, "name"), f"duplicate peer name {peer.name}")
        seen_peer.setdefault(peer.name, i)
    hosts: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, tuple[PathElem, ...]] = {}
    for section, field in (("directors", "address"), ("directors", "address6"), ("proxies", "address")):
        for i, host in enumerate(getattr(cfg, section)):
            address = getattr(host, field)
            if address is None:
                continue
            path = (section, i, field)
            if address in hosts:
                other = hosts[address]
                yield (path, f"address {address} is already used by {other[0]}[{other[1]}] "
                             f"(line {loc.line_of(other)})")
            hosts.setdefault(address, path)
    for i, peer in enumerate(cfg.bgp.peers):
        if peer.address in hosts:
            yield (("bgp", "peers", i, "address"),
                   f"peer address {peer.address} is a director or proxy of this fleet")


def check_references(cfg: GlbConfig) -> Iterator[Issue]:
    peers = {p.name for p in cfg.bgp.peers}
    directors = {d.name for d in cfg.directors}
    for i, d in enumerate(cfg.directors):
        for j, name in enumerate(d.bgp_peers or []):
            if name not in peers:
                yield (("directors", i, "bgp_peers", j),
                       f"unknown BGP peer {name!r} (bgp.peers has: {', '.join(sorted(peers))})")
    for i, p in enumerate(cfg.proxies):
        for j, name in enumerate(p.directors or []):
            if name not in directors:
                yield (("proxies", i, "directors", j),
                       f"unknown director {name!r} (directors: {', '.join(sorted(directors))})")


def check_services(cfg: GlbConfig, loc: Locator) -> Iterator[Issue]:
    proxies = {p.address for p in cfg.proxies}
    hosts = (proxies | {d.address for d in cfg.directors} | {d.outer_source for d in cfg.directors}
             | {d.address6 for d in cfg.directors if d.address6 is not None})
    for s, svc in enumerate(cfg.services):
        base = ("services", s)
        seen: dict[ipaddress.IPv4Address, int] = {}
        for b, backend in enumerate(svc.backends):
            path = (*base, "backends", b, "address")
            if backend.address in seen:
                first = svc.backends[seen[backend.address]]
                yield (path, f"backend {backend.address} is listed twice: as {first.state} at line "
                             f"{loc.line_of((*base, 'backends', seen[backend.address]))} and as "
                             f"{backend.state} here")
                continue
            seen[backend.address] = b
            if backend.address not in proxies:
                yield (path, f"backend {backend.address} is not the address of any entry in proxies")
        if all(x.state == "inactive" for x in svc.backends):
            yield ((*base, "backends"), "every backend is inactive: the table would be empty")
        if len(svc.backends) > MAX_BACKENDS:
            yield ((*base, "backends"), f"{len(svc.backends)} backends; at most {MAX_BACKENDS}")
        for field in ("hash_key", "seed"):
            if getattr(svc, field) is None and cfg.fleet.secret is None and cfg.fleet.secret_file is None:
                yield (base, f"no {field} and no fleet.secret to derive it from: set one of them")
        vseen: dict[object, int] = {}
        for v, vip in enumerate(svc.vips):
            if vip in vseen:
                yield ((*base, "vips", v), f"duplicate VIP {vip}")
            vseen.setdefault(vip, v)
            if vip in hosts:
                yield ((*base, "vips", v), f"VIP {vip} is the address of a director or proxy")
        for p, port in enumerate(svc.ports):
            for q in range(p):
                if port.overlaps(svc.ports[q]):
                    yield ((*base, "ports", p), f"port {port} overlaps port {svc.ports[q]} of this service")
                    break
        n_binds = (len(svc.vips) + len(svc.cidrs)) * len(svc.ports)
        if n_binds > UPSTREAM_MAX_BINDS:
            yield ((*base, "ports"),
                   f"{n_binds} binds (addresses x port ranges); a table holds at most {UPSTREAM_MAX_BINDS}")


def _bind_nets(svc) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, tuple[PathElem, ...]]]:
    out = [(ipaddress.ip_network(v), ("vips", i)) for i, v in enumerate(svc.vips)]
    out += [(n, ("cidrs", i)) for i, n in enumerate(svc.cidrs)]
    return out


def check_bind_conflicts(cfg: GlbConfig, loc: Locator) -> Iterator[Issue]:
    """Two services must never claim the same (address, protocol, port): which table wins?"""
    claimed: list[tuple[object, str, PortRange, tuple[PathElem, ...]]] = []
    for s, svc in enumerate(cfg.services):
        mine = []
        for net, sub in _bind_nets(svc):
            for port in svc.ports:
                for other_net, proto, other_port, where in claimed:
                    if (proto == svc.protocol and net.version == other_net.version
                            and net.overlaps(other_net) and port.overlaps(other_port)):
                        yield (("services", s, *sub),
                               f"{net} {svc.protocol}/{port} is already served by "
                               f"services[{where[1]}] (line {loc.line_of(where)})")
                        break
                mine.append((net, svc.protocol, port, ("services", s, *sub)))
        claimed += mine


def check_secret_file(cfg: GlbConfig, source: Path) -> Iterator[Issue]:
    if cfg.fleet.secret_file is None:
        return
    path = (source.parent / cfg.fleet.secret_file)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        yield (("fleet", "secret_file"), f"cannot read {path}: {exc.strerror}")
        return
    if len(secret) < 16:
        yield (("fleet", "secret_file"), f"{path}: the secret must be at least 16 characters")


def check_table_rows(cfg: GlbConfig) -> Iterator[Issue]:
    """Row settings that contradict each other (fleet.table_*, alt_hash_fields)."""
    fleet = cfg.fleet
    if fleet.alt_hash_fields is not None:
        seen: set[str] = set()
        for i, name in enumerate(fleet.alt_hash_fields):
            if name in seen:
                yield (("fleet", "alt_hash_fields", i), f"{name} is listed twice")
            seen.add(name)
        if set(fleet.alt_hash_fields) == set(fleet.hash_fields):
            yield (("fleet", "alt_hash_fields"),
                   "equals hash_fields: nothing to migrate (remove alt_hash_fields)")
    if fleet.table_semantics == "upstream" and "table_candidates" in fleet.model_fields_set \
            and fleet.table_candidates != 2:
        yield (("fleet", "table_candidates"),
               f"{fleet.table_candidates} candidates, but upstream rows hold exactly two "
               "(use table_semantics: candidates, or drop table_candidates)")
    width = 2 if fleet.table_semantics == "upstream" else fleet.table_candidates
    if fleet.alt_hash_fields is not None and 2 * width - 1 > GUE_MAX_HOPS:
        yield (("fleet", "table_candidates"),
               f"with alt_hash_fields the hop list carries {width - 1} + {width} proxies; a GUE "
               f"hop list holds at most {GUE_MAX_HOPS}: use table_candidates of 4 or less")


def all_issues(cfg: GlbConfig, loc: Locator, source: Path) -> list[Issue]:
    return [
        *check_table_rows(cfg),
        *check_names_and_hosts(cfg, loc),
        *check_references(cfg),
        *check_services(cfg, loc),
        *check_bind_conflicts(cfg, loc),
        *check_secret_file(cfg, source),
        *check_bgp_sessions(cfg, loc),
        *check_bgp_security(cfg, source),
        *check_bfd(cfg),
    ]


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be a TCP-MD5 key written into ExaBGP, BIRD and FRR configs."""
    if not password:
        return "the password is empty"
    if len(password.encode()) > TCP_MD5SIG_MAXKEYLEN:
        return (f"the password is {len(password.encode())} bytes; "
                f"TCP-MD5 keys are at most {TCP_MD5SIG_MAXKEYLEN}")
    if not _PASSWORD_RE.match(password):
        return f"the password may contain only {PASSWORD_CHARS} (it is written into three config grammars)"
    return None


def read_password_file(path: Path) -> str:
    """The password in ``path`` (surrounding whitespace stripped); OSError if unreadable."""
    return path.read_text(encoding="utf-8").strip()


def peer_password(peer: BgpPeer, source: Path) -> tuple[str | None, str]:
    """(password or None, where it comes from) for ``peer``; raises LookupError/OSError when
    the file or variable it names is missing."""
    if peer.password_file is not None:
        path = source.parent / peer.password_file
        return read_password_file(path), str(path)
    if peer.password_env is not None:
        value = os.environ.get(peer.password_env)
        if value is None:
            raise LookupError(f"environment variable {peer.password_env} is not set")
        return value.strip(), f"${peer.password_env}"
    return None, ""


def check_bgp_security(cfg: GlbConfig, source: Path) -> Iterator[Issue]:
    """Password files must exist and hold a key every config grammar can carry. Environment
    variables are checked where configs are rendered (validate may run elsewhere)."""
    for i, peer in enumerate(cfg.bgp.peers):
        if peer.password_file is None:
            continue
        where = ("bgp", "peers", i, "password_file")
        path = source.parent / peer.password_file
        try:
            password = read_password_file(path)
        except OSError as exc:
            yield (where, f"cannot read {path}: {exc.strerror}")
            continue
        problem = password_problem(password)
        if problem:
            yield (where, f"{path}: {problem}")


def password_file_warnings(cfg: GlbConfig, source: Path) -> Iterator[Issue]:
    """A password file others can read is legal (a fresh git checkout is 0644) but worth fixing."""
    for i, peer in enumerate(cfg.bgp.peers):
        if peer.password_file is None:
            continue
        path = source.parent / peer.password_file
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            yield (("bgp", "peers", i, "password_file"),
                   f"{path} is readable by others (mode {mode:04o}); chmod 600 it")


def check_bfd(cfg: GlbConfig) -> Iterator[Issue]:
    """BFD that detects no faster than the hold time only adds packets: refuse it."""
    hold_ms = cfg.bgp.hold_time * 1000
    entries: list[tuple[tuple[PathElem, ...], object]] = [(("bgp", "bfd"), cfg.bgp.bfd)]
    entries += [(("bgp", "peers", i, "bfd"), p.bfd) for i, p in enumerate(cfg.bgp.peers) if p.bfd is not None]
    for where, bfd in entries:
        if bfd.enabled and hold_ms and bfd.detect_ms >= hold_ms:  # type: ignore[attr-defined]
            yield (where, f"BFD detection time {bfd.detect_ms} ms (interval_ms x multiplier) is not "  # type: ignore[attr-defined]
                          f"shorter than hold_time {cfg.bgp.hold_time} s: lower it or disable BFD")
    # The director's BFD speaker (BIRD) sets timers per interface, not per neighbor.
    index = {p.name: i for i, p in enumerate(cfg.bgp.peers)}
    for d, director in enumerate(cfg.directors):
        enabled = [p for p in cfg.peers_of(director) if cfg.bgp.bfd_for(p).enabled]
        for peer in enabled[1:]:
            first = enabled[0]
            if cfg.bgp.bfd_for(peer) != cfg.bgp.bfd_for(first):
                yield (("bgp", "peers", index[peer.name], "bfd"),
                       f"director {director.name} (directors[{d}]) runs BFD to {first.name} and {peer.name} "
                       "with different timers; one director's BFD sessions share one interval and multiplier")


def check_bgp_sessions(cfg: GlbConfig, loc: Locator) -> Iterator[Issue]:
    """BGP sessions ExaBGP could not open, or that would silently announce nothing."""
    seen_addr: dict[tuple[object, int], int] = {}
    for i, peer in enumerate(cfg.bgp.peers):
        key = (peer.address, peer.port)
        if key in seen_addr:
            yield (("bgp", "peers", i, "address"),
                   f"peer {peer.address} port {peer.port} is already bgp.peers[{seen_addr[key]}] "
                   f"(line {loc.line_of(('bgp', 'peers', seen_addr[key]))})")
        seen_addr.setdefault(key, i)
    peers = {p.name: (i, p) for i, p in enumerate(cfg.bgp.peers)}
    router_ids: dict[object, int] = {}
    for i, d in enumerate(cfg.directors):
        names = d.bgp_peers if d.bgp_peers is not None else list(peers)
        if d.bgp_peers is not None and not d.bgp_peers:
            yield (("directors", i, "bgp_peers"),
                   "empty: this director would never announce its VIPs (omit the key to peer with all)")
        for j, name in enumerate(names):
            if d.bgp_peers is not None and name in d.bgp_peers[:j]:
                yield (("directors", i, "bgp_peers", j), f"peer {name!r} is listed twice")
            if name in peers and peers[name][1].address.version == 6 and d.address6 is None:
                # An IPv6 session needs an IPv6 source (and next hop self): address6.
                where = ("directors", i, "bgp_peers", j) if d.bgp_peers is not None else ("directors", i)
                yield (where, f"peer {name} ({peers[name][1].address}) is IPv6 but director {d.name} has "
                              "no address6 to open the session from (set address6, or list only "
                              "IPv4 peers in its bgp_peers)")
        rid = d.router_id or d.address
        if rid in router_ids:
            first = router_ids[rid]
            yield (("directors", i, "router_id" if d.router_id else "address"),
                   f"BGP router id {rid} is already used by directors[{first}] "
                   f"(line {loc.line_of(('directors', first))}); routers refuse duplicate ids")
        router_ids.setdefault(rid, i)


def bgp_warnings(cfg: GlbConfig) -> Iterator[Issue]:
    """Legal but probably unintended: IPv6 prefixes some or all directors cannot announce.

    Warnings, not errors, because both states are legitimate: during an IPv6 rollout some
    directors have no address6 yet (they keep carrying IPv4 while the others carry IPv6), and
    a fleet may route an IPv6 VIP to its directors by other means (static routes) -- the data
    plane serves it however the packets arrive. ``glb-agent validate --strict`` refuses them.
    """
    v6 = [(("services", s, field, k), net) for s, svc in enumerate(cfg.services)
          for field, items in (("vips", svc.vips), ("cidrs", svc.cidrs))
          for k, net in enumerate(items) if net.version == 6]
    if not v6:
        return
    able = [d for d in cfg.directors if 6 in cfg.session_versions(d)]
    able_names = {d.name for d in able}
    if not able:
        why = ("no bgp.peers entry is IPv6" if all(p.address.version == 4 for p in cfg.bgp.peers)
               else "no director has an address6 and an IPv6 peer")
        for path, net in v6:
            yield (path, f"IPv6 prefix {net} will not be announced by BGP: {why} "
                         "(IPv6 NLRI need an IPv6 session; see docs/bgp.md)")
        return
    for i, d in enumerate(cfg.directors):
        if d.name in able_names:
            continue
        if d.address6 is None:
            yield (("directors", i), f"director {d.name} has no address6: it announces only IPv4 prefixes, "
                                     f"IPv6 VIPs reach only {', '.join(x.name for x in able)}")
        else:
            yield (("directors", i, "address6"),
                   f"director {d.name} has an address6 but none of its BGP peers is IPv6: "
                   "it announces no IPv6 prefix")
