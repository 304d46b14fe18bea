"""A router namespace running BIRD and director namespaces running ExaBGP + the real feed.

Everything runs for real: BIRD 2 with the config from glb_agent.bgp.router, ExaBGP with
the config from glb_agent.bgp.render, the feed started by ExaBGP, a real XDP program
attached in each director namespace. Route state is read from the router's kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from glb_agent.bgp.render import render_exabgp_conf
from glb_agent.bgp.router import render_bird_conf, render_frr_conf
from glb_agent.config import load_config
from tests.support.netns import Lab, sh, wait_for

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
FRR = "/usr/lib/frr"
ROUTER_IP = "198.18.0.1"
ROUTER_IP6 = "2001:db8:18::1"
ROUTER_PEERS = ["r1", "r1v6"]  # the router's IPv4 and IPv6 entries in bgp.peers
DIRECTOR_IPS = {"d1": "198.18.0.11", "d2": "198.18.0.12"}
DIRECTOR_IPS6 = {"d1": "2001:db8:18::11", "d2": "2001:db8:18::12"}
VIP = "203.0.113.10/32"
VIP6 = "2001:db8:100::10/128"
CIDR = "198.51.100.0/28"

CONFIG = """\
fleet:
  name: bgptest
  secret: bgp-test-secret-0123456789
bgp:
  local_asn: 65100
  hold_time: {hold}
  bfd: {{enabled: {bfd}}}
  peers:
    - name: r1
      address: 198.18.0.1
      asn: 65000{security}
    - name: r1v6
      address: "2001:db8:18::1"
      asn: 65000{security}
directors:
  - name: d1
    address: 198.18.0.11
    address6: "2001:db8:18::11"
    interface: eth0
    gateway_mac: "02:47:4c:00:00:01"
  - name: d2
    address: 198.18.0.12
    address6: "2001:db8:18::12"
    interface: eth0
    gateway_mac: "02:47:4c:00:00:01"
proxies:
  - name: p1
    address: 198.18.0.21
    interface: eth0
services:
  - name: web
    vips: [203.0.113.10, "2001:db8:100::10"]
    cidrs: [198.51.100.0/28]
    ports: [80]
    backends:
      - address: 198.18.0.21
"""

EXABGP_ENV = {
    "exabgp.daemon.daemonize": "false",
    "exabgp.daemon.user": "root",
    "exabgp.api.cli": "false",
}


def nexthops(ns: str, prefix: str) -> set[str]:
    """Gateways of the kernel route for ``prefix`` in ``ns``; multipath and nhid forms."""
    family = "-6" if ":" in prefix else "-4"
    out = sh("ip", "-j", family, "route", "show", "exact", prefix, ns=ns).stdout
    routes = json.loads(out or "[]")
    gws: set[str] = set()
    for route in routes:
        if "gateway" in route:
            gws.add(route["gateway"])
        for hop in route.get("nexthops", []):
            gws.add(hop["gateway"])
        if "nhid" in route:
            gws |= _nhid_gateways(ns, route["nhid"])
    return gws


def _nhid_gateways(ns: str, nhid: int) -> set[str]:
    info = json.loads(sh("ip", "-j", "nexthop", "show", "id", str(nhid), ns=ns).stdout)[0]
    if "group" in info:
        return set().union(*(_nhid_gateways(ns, member["id"]) for member in info["group"]))
    return {info["gateway"]} if "gateway" in info else set()


@dataclass
class Director:
    name: str
    ns: str
    state_dir: Path
    conf: Path
    log: Path
    proc: subprocess.Popen | None = None


@dataclass
class BgpLab:
    """Build with ``BgpLab.create(lab, tmp_path)``; ``lab.close()`` removes everything."""

    lab: Lab
    tmp: Path
    config: Path
    router: str = ""
    directors: dict[str, Director] = field(default_factory=dict)
    cleanup: list[Path] = field(default_factory=list)
    frr_dir: Path | None = None

    @classmethod
    def create(cls, lab: Lab, tmp: Path, hold: int = 3, router: str = "bird",
               feed_args: dict[str, list[str]] | None = None, bfd: bool = True,
               password: str | None = None, router_password: str | None = None,
               ttl_security: bool = False) -> BgpLab:
        """``feed_args`` per director replace the default ``--readiness xdp``. ``password``
        is the TCP-MD5 key of both router entries (from a 0600 file next to glb.yml);
        ``router_password`` gives the router another one (a misconfigured router)."""
        config = tmp / "glb.yml"
        security = ""
        if password is not None:
            secret = tmp / "bgp.md5"
            secret.write_text(password + "\n")
            secret.chmod(0o600)
            security += "\n      password_file: bgp.md5"
        if ttl_security:
            security += "\n      ttl_security: true"
        config.write_text(CONFIG.format(hold=hold, bfd=str(bfd).lower(), security=security))
        self = cls(lab, tmp, config)
        self.router = lab.ns("r")
        sh("ip", "link", "add", "br0", "type", "bridge", ns=self.router)
        sh("ip", "addr", "add", f"{ROUTER_IP}/24", "dev", "br0", ns=self.router)
        sh("ip", "addr", "add", f"{ROUTER_IP6}/64", "dev", "br0", "nodad", ns=self.router)
        sh("ip", "link", "set", "br0", "up", ns=self.router)
        loaded = load_config(config)
        for name, addr in DIRECTOR_IPS.items():
            ns = lab.ns(name)
            lab.link(self.router, f"r-{name}", ns, "eth0", b_addrs=[f"{addr}/24", f"{DIRECTOR_IPS6[name]}/64"])
            sh("ip", "link", "set", f"r-{name}", "master", "br0", ns=self.router)
            state = tmp / f"state-{name}"
            state.mkdir()
            conf = tmp / f"exabgp-{name}.conf"
            command = [sys.executable, "-m", "glb_agent.cli", "bgp-feed", "--config", str(config),
                       "--director", name, "--interval", "0.1",
                       *(feed_args or {}).get(name, ["--readiness", "xdp"])]
            conf.write_text(render_exabgp_conf(loaded, name, command))
            self.directors[name] = Director(name, ns, state, conf, tmp / f"exabgp-{name}.log")
        router_loaded = loaded
        if router_password is not None:
            other = tmp / "router"
            other.mkdir()
            (other / "bgp.md5").write_text(router_password + "\n")
            (other / "bgp.md5").chmod(0o600)
            (other / "glb.yml").write_text(config.read_text())
            router_loaded = load_config(other / "glb.yml")
        if router == "frr":
            self._start_frr(router_loaded)
        else:
            self._start_bird(router_loaded)
        return self

    def _start_bird(self, loaded) -> None:
        conf = self.tmp / "bird.conf"
        conf.touch(mode=0o600)  # may hold the TCP-MD5 password
        conf.write_text(render_bird_conf(loaded, ROUTER_PEERS, connect_retry=1, error_wait_max=2))
        self.lab.start("bird", "-f", "-c", str(conf), "-s", str(self.tmp / "bird.ctl"),
                       "-P", str(self.tmp / "bird.pid"), ns=self.router,
                       stderr=open(self.tmp / "bird.log", "w"))  # noqa: SIM115

    def _start_frr(self, loaded) -> None:
        """zebra (kernel routes) + bgpd with private sockets and no TCP vty.

        FRR drops privileges to its ``frr`` user, which cannot enter pytest's 0700 tmp
        directories, so its files live in a directory of their own (removed by close).
        """
        run = Path(tempfile.mkdtemp(prefix="glbt-frr-"))
        self.cleanup.append(run)
        conf = run / "frr.conf"
        conf.touch(mode=0o600)  # may hold the TCP-MD5 password
        conf.write_text(render_frr_conf(loaded, ROUTER_PEERS, connect_retry=1))
        (run / "zebra.conf").write_text("")
        (run / "bfdd.conf").write_text("")
        shutil.chown(run, "frr", "frr")
        for path in run.iterdir():
            shutil.chown(path, "frr", "frr")
        self.frr_dir = run
        common = ["-P", "0", "-z", str(run / "zserv.api"), "--vty_socket", str(run), "--log", "stdout"]
        log = open(self.tmp / "frr.log", "w")  # noqa: SIM115
        self.lab.start(f"{FRR}/zebra", *common, "-i", str(run / "zebra.pid"),
                       "-f", str(run / "zebra.conf"), ns=self.router, stdout=log, stderr=log)
        wait_for(lambda: (run / "zserv.api").exists(), 10, what="zebra's socket")
        # bfdd runs the sessions bgpd asks for with "neighbor ... bfd".
        self.lab.start(f"{FRR}/bfdd", *common, "-i", str(run / "bfdd.pid"), "-f", str(run / "bfdd.conf"),
                       "--bfdctl", str(run / "bfdd.sock"), ns=self.router, stdout=log, stderr=log)
        self.lab.start(f"{FRR}/bgpd", *common, "-i", str(run / "bgpd.pid"), "-f", str(conf),
                       ns=self.router, stdout=log, stderr=log)

    def close(self) -> None:
        """Remove what lives outside the Lab (the Lab itself stops every process)."""
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)

    def env(self, director: str) -> dict[str, str]:
        return {**os.environ, **EXABGP_ENV, "GLB_STATE_DIR": str(self.directors[director].state_dir)}

    def start_exabgp(self, director: str) -> subprocess.Popen:
        d = self.directors[director]
        log = open(d.log, "a")  # noqa: SIM115 - the child owns it
        # nsenter switches only the network namespace: unlike `ip netns exec` it keeps the
        # host's /sys/fs/bpf, where the real data plane pins what its readiness check reads.
        # nsenter execs ExaBGP, so the Popen pid is ExaBGP's.
        d.proc = self.lab.start("nsenter", f"--net=/run/netns/{d.ns}", str(VENV_BIN / "exabgp"), str(d.conf),
                                ns=None, env=self.env(director), stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(self.tmp))
        return d.proc

    def attach_xdp(self, director: str) -> None:
        sh(sys.executable, str(HERE / "xdp_passer.py"), "eth0", ns=self.directors[director].ns)

    def detach_xdp(self, director: str) -> None:
        sh("ip", "link", "set", "dev", "eth0", "xdp", "off", ns=self.directors[director].ns)

    def agent(self, director: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``glb-agent ARGS`` in the director's namespace with its state directory."""
        d = self.directors[director]
        cmd = ["ip", "netns", "exec", d.ns, str(VENV_BIN / "glb-agent"), *args]
        return subprocess.run(cmd, env=self.env(director), text=True, capture_output=True, timeout=timeout)

    def route_text(self, prefix: str) -> str:
        return sh("ip", "-6" if ":" in prefix else "-4", "route", "show", "exact", prefix, ns=self.router).stdout

    def nexthops(self, prefix: str = VIP) -> set[str]:
        return nexthops(self.router, prefix)

    def wait_nexthops(self, expected: set[str], prefix: str = VIP, timeout: float = 20) -> float:
        return wait_for(lambda: self.nexthops(prefix) == expected, timeout, interval=0.05,
                          what=f"{prefix} via {sorted(expected)} (now {sorted(self.nexthops(prefix))})")

    def all_directors(self, version: int = 4) -> set[str]:
        return set((DIRECTOR_IPS if version == 4 else DIRECTOR_IPS6).values())

    def logs(self) -> str:
        """BIRD's and every ExaBGP's log, for failure reports."""
        parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                 for p in [self.tmp / "bird.log", self.tmp / "frr.log", *(d.log for d in self.directors.values())] if p.exists()]
        return "\n".join(parts)

    def power_off(self, director: str) -> None:
        """The director "loses power" behind the switch: the bridge drops every frame to and
        from its port (bridge-family nftables in the router namespace, whose br0 is the
        switch), so the router sees no link change, no FIN, no NOTIFICATION."""
        port = f"r-{director}"
        rules = (f"table bridge glbt_power {{\n"
                 f"  chain pre {{ type filter hook prerouting priority -300; iifname \"{port}\" drop; }}\n"
                 f"  chain post {{ type filter hook postrouting priority 300; oifname \"{port}\" drop; }}\n"
                 f"}}\n")
        subprocess.run(["ip", "netns", "exec", self.router, "nft", "-f", "-"], input=rules, text=True,
                       check=True, timeout=10)

    def power_on(self) -> None:
        sh("nft", "delete", "table", "bridge", "glbt_power", ns=self.router)

    def router_bfd(self) -> dict[str, str]:
        """The router's BFD sessions: peer address -> state (BIRD or FRR)."""
        if self.frr_dir is None:
            out = subprocess.run(["birdc", "-s", str(self.tmp / "bird.ctl"), "show", "bfd", "sessions"],
                                 capture_output=True, text=True, timeout=10).stdout
            from glb_agent.bgp.bfd import parse_sessions

            return {x.address: x.state for x in parse_sessions(out)}
        out = self.vtysh("show bfd peers json")
        try:
            return {p["peer"]: p["status"] for p in json.loads(out or "[]")}
        except ValueError:
            return {}

    def _bird_protocol(self, address: str) -> str:
        names = {**{v: f"d_{k}" for k, v in DIRECTOR_IPS.items()}, **{v: f"d_{k}_v6" for k, v in DIRECTOR_IPS6.items()}}
        return subprocess.run(["birdc", "-s", str(self.tmp / "bird.ctl"), "show", "protocols", "all",
                               names[address]], capture_output=True, text=True, timeout=10).stdout

    def _frr_neighbor(self, address: str) -> dict:
        try:
            return json.loads(self.vtysh(f"show bgp neighbors {address} json")).get(address, {})
        except ValueError:
            return {}

    def bgp_established(self, address: str) -> bool:
        """Is the router's BGP session to ``address`` established?"""
        if self.frr_dir is None:
            return "Established" in self._bird_protocol(address)
        return self._frr_neighbor(address).get("bgpState") == "Established"

    def bgp_resets(self, address: str) -> tuple[int, str]:
        """(times the router's session to ``address`` was reset, the last reason) -- BIRD
        keeps only the last error, so it counts 0 or 1."""
        if self.frr_dir is None:
            last = next((line.split(":", 1)[1].strip() for line in self._bird_protocol(address).splitlines()
                         if "Last error:" in line), "")
            return (1 if last else 0), last
        info = self._frr_neighbor(address)
        return int(info.get("connectionsDropped", 0)), str(info.get("lastResetDueTo", ""))

    def vtysh(self, command: str) -> str:
        assert self.frr_dir is not None
        return subprocess.run(["vtysh", "--vty_socket", str(self.frr_dir), "-c", command],
                              capture_output=True, text=True, timeout=10).stdout

    def bird_paths(self, prefix: str) -> set[str]:
        """Next hops of every path BIRD holds for ``prefix`` (its RIB, not the kernel)."""
        out = subprocess.run(["birdc", "-s", str(self.tmp / "bird.ctl"), "show", "route", "for", prefix,
                              "all"], capture_output=True, text=True, timeout=10).stdout
        return {line.split()[1] for line in out.splitlines() if line.strip().startswith("BGP.next_hop:")}

    def feed_events(self, director: str) -> list[dict]:
        """The feed's structured events, from ExaBGP's combined log."""
        events = []
        for line in self.directors[director].log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def feed_pids(self, director: str) -> list[int]:
        """Processes in the director namespace running the feed."""
        pids = sh("ip", "netns", "pids", self.directors[director].ns).stdout.split()
        found = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"bgp-feed" in cmdline:
                found.append(int(pid))
        return found

    def signal_exabgp(self, director: str, sig: signal.Signals) -> None:
        proc = self.directors[director].proc
        assert proc is not None
        os.kill(proc.pid, sig)
