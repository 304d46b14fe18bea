"""``glb-agent lab up|down|status|demo``: the whole fleet in namespaces, via the real code paths.

Every component is started exactly as a host would start it — ``glb-agent proxy apply``,
``glb-agent run`` (the director agent), ExaBGP running ``glb-agent bgp-feed``, BIRD with the
config ``glb_agent.bgp.router`` renders — only wrapped in ``nsenter --net`` (not ``ip netns
exec``, which would hide /sys/fs/bpf where the data planes pin their maps).
Logs and state live in /run/glb-lab/<node>/.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from glb_agent.bgp.state import pid_alive
from glb_agent.config import load_config
from glb_agent.config.load import LoadedConfig
from glb_agent.errors import GlbError, InputError
from glb_agent.lab import netns, network
from glb_agent.lab.topology import CLIENT_NS, PREFIX, Plan, ns_name, plan
from glb_agent.util.files import write_atomic

RUN_DIR = Path(os.environ.get("GLB_LAB_DIR", "/run/glb-lab"))
DPDK_ENV = "GLB_LAB_DPDK"  # directors to run on the DPDK data plane (lab_config)
PIN_ROOT = Path("/sys/fs/bpf/glb-lab")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "inventories/lab/group_vars/all/glb.yml"
EXABGP_ENV = {"exabgp.daemon.daemonize": "false", "exabgp.daemon.user": "root", "exabgp.api.cli": "false",
              "exabgp.log.destination": "stdout"}


def _bin(name: str) -> str:
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise GlbError(f"{name} not found (run scripts/setup.sh)")
    return found


def _say(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


def _nsenter(ns: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}"]


def _spawn(node: str, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a long-running process detached from us; its log goes to RUN_DIR/node/name.log."""
    d = RUN_DIR / node
    d.mkdir(parents=True, exist_ok=True)
    log = open(d / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd=d, start_new_session=True)
    (d / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def _check(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise GlbError(f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def nexthops(prefix: str) -> set[str]:
    """Gateways of the router's kernel route for ``prefix`` (multipath or nhid form)."""
    ns = netns.names(f"{PREFIX}r")
    if not ns:
        return set()
    family = "-6" if ":" in prefix else "-4"
    out = netns.run("ip", "-j", family, "route", "show", "exact", prefix, ns=ns[0], check=False).stdout
    gws: set[str] = set()
    for route in json.loads(out or "[]"):
        if "gateway" in route:
            gws.add(route["gateway"])
        for hop in route.get("nexthops", []):
            gws.add(hop["gateway"])
        if "nhid" in route:
            nh = json.loads(netns.run("ip", "-j", "nexthop", "show", "id", str(route["nhid"]),
                                      ns=ns[0]).stdout)
            for group in nh:
                for member in group.get("group", []):
                    one = json.loads(netns.run("ip", "-j", "nexthop", "show", "id", str(member["id"]),
                                               ns=ns[0]).stdout)
                    gws |= {x["gateway"] for x in one if "gateway" in x}
                if "gateway" in group:
                    gws.add(group["gateway"])
    return gws


def start_router(loaded: LoadedConfig, p: Plan) -> None:
    from glb_agent.bgp.router import render_bird_conf

    d = RUN_DIR / p.router.name
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "bird.conf"
    conf.touch(mode=0o600)  # it holds the TCP-MD5 password
    conf.write_text(render_bird_conf(loaded, list(p.router_peers), log=f'"{d / "bird-events.log"}"'))
    _spawn(p.router.name, "bird", _nsenter(p.router.ns) + [
        _bin("bird") if shutil.which("bird") else "/usr/sbin/bird", "-f", "-c", str(conf),
        "-s", str(d / "bird.ctl"), "-P", str(d / "bird.pid.bird")])


def start_proxy(config: Path, name: str, ns: str) -> None:
    _check(_nsenter(ns) + [_bin("glb-agent"), "proxy", "apply", str(config), "--name", name,
                           "--state-dir", str(RUN_DIR / name), "--pin-dir", str(PIN_ROOT / name)],
           f"proxy apply {name}")
    _spawn(name, "httpd", _nsenter(ns) + [sys.executable, "-m", "glb_agent.lab.httpd", "--name", name,
                                           "--down-file", str(RUN_DIR / name / "down")])
    # Listening before we return: a client that connects first (no director health check in
    # front, e.g. router ECMP straight to the proxies) would be refused.
    wait_for(lambda: netns.run("ss", "-Hltn", "sport = :80", ns=ns, check=False).stdout.strip() != "", 30,
             f"{name}'s HTTP service listening")


def start_director(config: Path, name: str, ns: str) -> None:
    start_director_agent(config, name, ns)
    start_exabgp(config, name, ns)


def start_director_agent(config: Path, name: str, ns: str) -> None:
    state = RUN_DIR / name
    _spawn(name, "agent", _nsenter(ns) + [
        _bin("glb-agent"), "run", "--config", str(config), "--name", name, "--pin-dir", str(PIN_ROOT / name),
        "--state-dir", str(state), "--health-file", str(state / "health.json")])


def start_exabgp(config: Path, name: str, ns: str) -> None:
    from glb_agent.bgp.render import render_exabgp_conf

    state = RUN_DIR / name
    state.mkdir(parents=True, exist_ok=True)
    feed = [_bin("glb-agent"), "bgp-feed", str(config), "--name", name,
            "--pin-dir", str(PIN_ROOT / name), "--state-dir", str(state)]
    conf = state / "exabgp.conf"
    conf.touch(mode=0o600)  # it holds the TCP-MD5 password
    conf.write_text(render_exabgp_conf(load_config(config), name, feed))
    _spawn(name, "exabgp", _nsenter(ns) + [_bin("exabgp"), str(conf)],
           env={**EXABGP_ENV, "GLB_STATE_DIR": str(state)})


def wait_for(predicate, timeout: float, what: str) -> float:
    return netns.wait_for(predicate, timeout, interval=0.2, what=what)


def stop_director(name: str, how: str = "term") -> None:
    """``term``: stop ExaBGP (its feed withdraws first) and the agent, detach the data plane.
    ``kill``: SIGKILL ExaBGP and the agent, as a crash would (the XDP program stays)."""
    import signal

    sig = signal.SIGKILL if how == "kill" else signal.SIGTERM
    for proc in ("exabgp", "agent"):
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int((RUN_DIR / name / f"{proc}.pid").read_text())
            os.kill(pid, sig)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            wait_for(lambda p=pid: not Path(f"/proc/{p}").exists(), 15, f"{name} {proc} to exit")
    if how != "kill":
        # The running lab's YAML and the director's state directory: a director on DPDK
        # (GLB_LAB_DPDK, lab switch) has its process there.
        subprocess.run(_nsenter(ns_name(name)) + [
            _bin("glb-agent"), "director", "stop", str(_lab_yaml()), "--name", name,
            "--pin-dir", str(PIN_ROOT / name)], capture_output=True, timeout=60,
            env={**os.environ, "GLB_STATE_DIR": str(RUN_DIR / name)})


def up(config: Path = DEFAULT_CONFIG, directors: list[str] | None = None,
       proxies: list[str] | None = None) -> Plan:
    """Build the lab and start the named directors/proxies (default: all in the YAML);
    the others get their namespaces but nothing runs in them."""
    t0 = time.monotonic()
    load_config(config)  # a broken YAML fails before the old lab is removed
    down(quiet=True)
    config = lab_config(config)
    loaded = load_config(config)
    p = plan(loaded)
    _say("building namespaces: client, router, fabric bridge, "
         f"{len(p.directors)} directors, {len(p.proxies)} proxies")
    network.build(p)
    _say(f"router {p.router.name}: BIRD (ECMP, AS {p.router_asn})")
    start_router(loaded, p)
    for node in [n for n in p.proxies if proxies is None or n.name in proxies]:
        _say(f"proxy {node.name}: eBPF decap + VIPs on loopback + HTTP service")
        start_proxy(config, node.name, node.ns)
    started = [n for n in p.directors if directors is None or n.name in directors]
    for node in started:
        kind = "DPDK (af_xdp)" if node.name in dpdk_directors() else "XDP"
        _say(f"director {node.name}: {kind} director agent + ExaBGP")
        start_director(config, node.name, node.ns)
    want = {v: {str(d.address if v.version == 4 else d.address6) for d in started}
            for v in announced_vips(loaded, p)}
    took = wait_for(lambda: all(nexthops(str(v)) >= hops for v, hops in want.items()), 60,
                    "router ECMP routes for " + "; ".join(f"{v} via {', '.join(sorted(h))}"
                                                          for v, h in want.items()))
    _say(f"up in {time.monotonic() - t0:.1f}s (BGP converged {took:.1f}s after the last start)")
    return p


def _needs_ipv6_sessions(loaded: LoadedConfig) -> bool:
    cfg = loaded.config
    has_v6 = any(n.version == 6 for s in cfg.services for n in (*s.vips, *s.cidrs))
    return has_v6 and not any(p.address.version == 6 for p in cfg.bgp.peers)


def lab_config(config: Path) -> Path:
    """The YAML the lab runs for ``config``; writes RUN_DIR/glb.yml when it differs.

    The inventory's glb.yml is also what Ansible, Molecule and the appliance image run on
    IPv4-only fabrics, so it has IPv6 VIPs but no IPv6 BGP session (``validate`` warns). The
    namespace lab is dual stack: for such a config its copy adds the router's IPv6 entry to
    bgp.peers (``<router>v6``, the router's fabric IPv6 address, same ASN) and an
    ``address6`` to every director without one (topology.fabric_address6). Nothing else
    changes, so the forwarding tables are the ones the inventory's fleet computes. With
    ``$GLB_LAB_DPDK`` (director names) the copy also gives those directors ``dataplane:
    dpdk`` (a mixed fleet; same tables), and ``lab switch`` records its choices in
    RUN_DIR/dataplanes.json, which every later derivation keeps. The lab always runs a copy,
    even of a config that needs no change, so ``lab switch`` never edits the source; hence
    an edit of the source reaches the lab through ``apply`` (``glb-agent lab apply``), which
    derives the copy again. Relative ``secret_file`` / ``password_file`` names are made
    absolute: the copy lives elsewhere.
    """
    from ruamel.yaml import YAML

    config = config.resolve()
    loaded = load_config(config)
    dpdk = dpdk_directors()
    needs_v6 = _needs_ipv6_sessions(loaded)
    yaml = YAML()
    data = yaml.load(config.read_text(encoding="utf-8"))
    unknown = sorted(set(dpdk) - {d["name"] for d in data["directors"]})
    if unknown:
        raise InputError(f"{DPDK_ENV}: no director named {', '.join(unknown)} in {config}")
    switched = _switched()
    for director in data["directors"]:
        if director["name"] in dpdk:
            _set_dataplane(director, "dpdk")
        if director["name"] in switched:
            _set_dataplane(director, switched[director["name"]])
    _absolute_files(data, config)
    if needs_v6:
        _add_ipv6_sessions(loaded, data, config)
    out = RUN_DIR / "glb.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        fh.write(f"# {config} for the namespace lab, by glb_agent.lab.run.lab_config: IPv6 BGP\n"
                 "# sessions (router entry <name>v6, director address6), $GLB_LAB_DPDK, lab switch.\n")
        yaml.dump(data, fh)
    (RUN_DIR / "glb.yml.source").write_text(f"{config}\n")
    return out


def _absolute_files(data: dict, config: Path) -> None:
    """The copy lives in RUN_DIR: files named relative to the original YAML stay findable."""
    fleet = data.get("fleet") or {}
    if fleet.get("secret_file") and not Path(fleet["secret_file"]).is_absolute():
        fleet["secret_file"] = str(config.parent / fleet["secret_file"])
    for peer in (data.get("bgp") or {}).get("peers") or []:
        if peer.get("password_file") and not Path(peer["password_file"]).is_absolute():
            peer["password_file"] = str(config.parent / peer["password_file"])


def _switched() -> dict[str, str]:
    """Data planes chosen by ``lab switch`` since ``lab up`` (director name -> xdp|dpdk)."""
    try:
        return json.loads((RUN_DIR / "dataplanes.json").read_text())
    except FileNotFoundError:
        return {}


def _source() -> Path:
    """The YAML the running lab was derived from (lab up, lab apply)."""
    try:
        return Path((RUN_DIR / "glb.yml.source").read_text().strip())
    except FileNotFoundError:
        raise GlbError("the lab is not up: run `glb-agent lab up`") from None


def apply(config: Path | None = None, directors: list[str] | None = None, *extra: str,
          timeout: float = 60.0) -> str:
    """``glb-agent lab apply [CONFIG]``: make an edit of the lab's YAML live, as on real hosts.

    Derives the lab's copy again from ``config`` (default: the YAML the lab was started
    from), keeping ``lab switch`` choices, and runs ``glb-agent apply`` (with ``extra``,
    e.g. --force) for each of ``directors`` (default: every director whose agent runs).
    Returns the applies' output; a refused or failed apply raises with its message, and the
    directors after it are not touched."""
    source = config.resolve() if config is not None else _source()
    load_config(source)  # exit 2 on a bad edit, before the lab's copy changes
    copy = lab_config(source)
    if directors is None:
        names = [d.name for d in plan(load_config(copy)).directors]
        directors = [n for n in names if _alive(RUN_DIR / n / "agent.pid")]
    return "".join(_check(_nsenter(ns_name(name)) + [
        _bin("glb-agent"), "apply", "--config", str(copy), "--state-dir", str(RUN_DIR / name),
        "--timeout", str(timeout), *extra], f"glb-agent apply on {name}") for name in directors)


def _alive(pid_file: Path) -> bool:
    """Whether the process a lab pid file names runs (bgp.state's liveness test)."""
    try:
        return pid_alive(int(pid_file.read_text()))
    except (FileNotFoundError, ValueError):
        return False


def _set_dataplane(director: dict, dataplane: str) -> None:
    """``dataplane`` for one director entry of the lab's YAML; the DPDK director runs on
    af_xdp over the director's veth, without hugepages, on CPU 0 (lab settings)."""
    director["dataplane"] = dataplane
    if dataplane == "dpdk":
        director.setdefault("dpdk", {"lcores": "0", "memory_mb": 256})


def switch_dataplane(name: str, dataplane: str, timeout: float = 60.0) -> str:
    """``glb-agent lab switch NAME xdp|dpdk``: what an operator does on one director host.

    Records the choice (RUN_DIR/dataplanes.json), derives the lab's glb.yml again so director
    ``name`` runs ``dataplane``, then runs ``glb-agent apply`` for that director, which makes
    its agent drain, wait for its VIP traffic to stop, switch data planes with the same tables
    and re-announce (glb_agent.agent.director). The other directors read the same file at
    their next reload and find nothing changed for them. Returns apply's output; a refused
    switch raises (exit 1) and the agent keeps the old data plane, the file keeps the edit.
    """
    if dataplane not in ("xdp", "dpdk"):
        raise InputError(f"data plane {dataplane!r}: expected xdp or dpdk")
    source = _source()
    if name not in {d.name for d in load_config(RUN_DIR / "glb.yml").config.directors}:
        raise InputError(f"no director named {name!r} in {RUN_DIR / 'glb.yml'}")
    write_atomic(RUN_DIR / "dataplanes.json", json.dumps({**_switched(), name: dataplane}))
    return apply(source, [name], timeout=timeout)


def _add_ipv6_sessions(loaded: LoadedConfig, data: dict, config: Path) -> None:
    """The router's IPv6 BGP entry and every director's address6 (see lab_config)."""
    from glb_agent.lab.topology import fabric_address6

    router = loaded.config.bgp.peers[0]
    v6 = {"name": f"{router.name}v6", "address": str(fabric_address6(router.address)), "asn": router.asn}
    # The IPv6 end of the same router: same password, GTSM and BFD settings as its IPv4 end.
    first = data["bgp"]["peers"][0]
    v6.update({k: first[k] for k in ("password_file", "password_env", "ttl_security", "bfd") if k in first})
    data["bgp"]["peers"].append(v6)
    for director in data["directors"]:
        if "address6" not in director:
            keys = list(director)
            at = keys.index("address") + 1 if "address" in keys else len(keys)
            director.insert(at, "address6", str(fabric_address6(director["address"])))


def dpdk_directors() -> list[str]:
    """Directors the lab runs on the DPDK data plane: $GLB_LAB_DPDK, comma-separated names
    (e.g. ``d2``: a mixed fleet, d1 XDP and d2 DPDK on af_xdp over its veth)."""
    return [n.strip() for n in os.environ.get(DPDK_ENV, "").split(",") if n.strip()]


def _lab_yaml() -> Path:
    """The YAML the running lab's directors read (its copy), else the inventory's."""
    copy = RUN_DIR / "glb.yml"
    return copy if copy.exists() else DEFAULT_CONFIG


def running_config(config: Path) -> Path:
    """The YAML the running lab was started with for ``config`` (see lab_config)."""
    derived, source = RUN_DIR / "glb.yml", RUN_DIR / "glb.yml.source"
    try:
        if source.read_text().strip() == str(config.resolve()) and derived.exists():
            return derived
    except OSError:
        pass
    return config


def announced_vips(loaded: LoadedConfig, p: Plan) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The VIPs the lab router learns by BGP: IPv4 ones always, IPv6 ones when the router has
    an IPv6 session (an IPv6 entry in bgp.peers) and the directors an address6."""
    v6 = len(p.router_peers) > 1 and all(d.address6 is not None for d in loaded.config.directors)
    return [v for v in p.vips if v.version == 4 or v6]


def down(quiet: bool = False) -> list[str]:
    removed = network.destroy()
    for pin in PIN_ROOT.glob("*") if PIN_ROOT.exists() else []:
        shutil.rmtree(pin, ignore_errors=True)
    with contextlib.suppress(OSError):
        PIN_ROOT.rmdir()
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    if not quiet:
        _say(f"removed {len(removed)} namespaces" if removed else "nothing to remove")
    return removed


def status(config: Path = DEFAULT_CONFIG) -> dict:
    loaded = load_config(running_config(config))
    p = plan(loaded)
    doc: dict = {"namespaces": netns.names(PREFIX), "routes": {}, "directors": {}}
    for v in announced_vips(loaded, p):
        doc["routes"][str(v)] = sorted(nexthops(str(v)))
    from glb_agent.bgp.bfd import parse_sessions, query, sessions

    for node in p.directors:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            live = sessions(RUN_DIR / node.name)
            doc["directors"][node.name] = {
                "agent": json.loads((RUN_DIR / node.name / "director-status.json").read_text()),
                "bgp": json.loads((RUN_DIR / node.name / "bgp-feed.json").read_text()),
                "bfd": None if live is None else {x.address: x.state for x in live},
            }
    # The router's view of BFD: one session per director address (BIRD's control socket).
    with contextlib.suppress(OSError):
        doc["router_bfd"] = {x.address: x.state
                             for x in parse_sessions(query(RUN_DIR / p.router.name / "bird.ctl"))}
    return doc


def _requests(vip: str, sources: list[str]) -> tuple[Counter[str], int, int]:
    """One HTTP request per client source to ``vip``: (served per proxy, failures, answers
    whose ``client`` is not the source -- the proxy must see the real client, not a NAT)."""
    host = f"[{vip}]" if ":" in vip else vip
    served: Counter[str] = Counter()
    failures = wrong_client = 0
    for src in sources:
        r = netns.run("curl", "-s", "-g", "-m", "3", "--interface", src, f"http://{host}/",
                      ns=CLIENT_NS, check=False)
        try:
            answer = json.loads(r.stdout)
            served[answer["proxy"]] += 1
        except (json.JSONDecodeError, KeyError, TypeError):
            failures += 1
            continue
        seen = ipaddress.ip_address(str(answer.get("client", "::")))
        # the service listens on "::": IPv4 clients show up as ::ffff:a.b.c.d
        if getattr(seen, "ipv4_mapped", None) is not None:
            seen = seen.ipv4_mapped
        if seen != ipaddress.ip_address(src):
            wrong_client += 1
    return served, failures, wrong_client


def demo(config: Path = DEFAULT_CONFIG, requests: int = 64) -> dict:
    """One request per client source address to the first IPv4 VIP and, when the router
    learns IPv6 VIPs, to the first IPv6 VIP; who served what."""
    config = running_config(config)
    loaded = load_config(config)
    p = plan(loaded)
    if CLIENT_NS not in netns.names(PREFIX):
        raise GlbError("the lab is not up: run `glb-agent lab up`")
    vips = announced_vips(loaded, p)
    vip = next(str(v) for v in vips if v.version == 4)
    vip6 = next((str(v) for v in vips if v.version == 6), None)
    before = _director_counters(p, config)
    served, failures, wrong = _requests(vip, [str(a) for a in p.client_addresses[:requests]])
    ipv6 = None
    if vip6 is not None:
        served6, failures6, wrong6 = _requests(vip6, [str(a) for a in p.client_addresses6[:requests]])
        ipv6 = {"vip": vip6, "requests": requests, "failures": failures6 + wrong6, "proxies": dict(served6)}
    after = _director_counters(p, config)
    per_director = {d: after.get(d, 0) - before.get(d, 0) for d in after}
    st = status(config)
    # "failures" counts both families, so a caller checking it alone misses no IPv6 failure.
    report = {"vip": vip, "requests": requests, "ipv4_failures": failures + wrong,
              "failures": failures + wrong + (ipv6["failures"] if ipv6 else 0), "proxies": dict(served),
              "ipv6": ipv6, "director_packets": per_director, "routes": st["routes"],
              "health": {name: {f"{s['service']}/{b['address']}": b["healthy"] for s in d["agent"]["services"]
                                for b in s["backends"]} for name, d in st["directors"].items()}}
    _print_demo(report)
    return report


def _director_counters(p: Plan, config: Path) -> dict[str, int]:
    """Packets each director forwarded (from its own data plane's counters, via the CLI, with
    the running lab's YAML: XDP pins or the DPDK process's stats, whichever it runs)."""
    out = {}
    for node in p.directors:
        r = subprocess.run(_nsenter(node.ns) + [_bin("glb-agent"), "director", "status", str(config),
                                                "--name", node.name, "--pin-dir", str(PIN_ROOT / node.name),
                                                "--json"], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "GLB_STATE_DIR": str(RUN_DIR / node.name)})
        try:
            counters = json.loads(r.stdout).get("counters", {})
        except json.JSONDecodeError:
            continue
        out[node.name] = sum(v for svc in counters.values() for k, v in svc.items()
                             if k.startswith("forwarded") and k.endswith("_packets"))
    return out


def _print_demo(r: dict) -> None:
    parts = [(r, r["ipv4_failures"])] + ([(r["ipv6"], r["ipv6"]["failures"])] if r["ipv6"] else [])
    for part, failed in parts:
        print(f"\n{part['requests']} HTTP requests to VIP {part['vip']} from {part['requests']} client "
              f"addresses ({failed} failed)\n")
        print("served by proxy:")
        for name, n in sorted(part["proxies"].items()):
            print(f"  {name:<6} {n:>4}  {'#' * n}")
    print("\npackets forwarded by director (router ECMP spreads flows over directors):")
    for name, n in sorted(r["director_packets"].items()):
        print(f"  {name:<6} {n:>6}")
    print("\nrouter routes (BGP from ExaBGP, installed by BIRD; IPv6 over the IPv6 sessions):")
    for vip, hops in r["routes"].items():
        print(f"  {vip} via {', '.join(hops) or 'NOTHING'}")
    print("\nbackend health as each director sees it:")
    for d, view in r["health"].items():
        print(f"  {d}: " + ", ".join(f"{k} {'up' if ok else 'DOWN'}" for k, ok in view.items()))
