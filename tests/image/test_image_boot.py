"""Boot test of the appliance image (image/build.sh) under qemu.

Builds the image when it is missing or older than its inputs (image/, roles/glb_common,
the agent's sources), boots a copy-on-write overlay of it from its own disk (SeaBIOS +
extlinux) under qemu TCG (KVM when available), with its per-machine settings given through
fw_cfg exactly as an operator would on the kernel command line, and checks over SSH:
a fresh machine-id and SSH host keys made on this boot, the hostname and authorized key from
the boot parameters, the agent (``/opt/glb/venv/bin/glb-agent --version``, bcc importable,
the installed glb.yml validates), the units the image ships enabled and active, the
glb_common sysctls applied by systemd at boot, and a login prompt on the serial console.

The image carries the DPDK director (role glb_director, tasks/dpdk_install.yml): the agent
resolves the installed /opt/glb/dpdk/glb-director-dpdk, which forwards a packet through
net_pcap exactly as this checkout's build does. Then the glb_director role is really applied
to the booted VM (from the host, over SSH) with a glb.yml that puts this director on
``dataplane: dpdk`` with hugepages: packages already there, hugepages reserved and mounted,
the units installed and started, the agent running glb-director-dpdk on af_xdp over a veth
(a SYN to the VIP comes back GUE-encapsulated, ping to the director's own address still
answered by the kernel), and a second run changes nothing.

Gated: set GLB_VM_TESTS=1 (needs root for the build, qemu, ~2-8 min; see docs/image.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.systemd import UNITS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "image"))
import vm  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.environ.get("GLB_VM_TESTS") != "1", reason="VM test: set GLB_VM_TESTS=1 (docs/image.md)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root"),
    # The first test pays for the image build (when stale) and the boot.
    pytest.mark.timeout(2400),
]
IMAGE = ROOT / "image" / "out" / "glb-appliance.qcow2"
# What goes into the image (image/vm.py and image/cache/ do not).
INPUTS = [
    *(ROOT / "image" / name for name in ("build.sh", "build.py", "image.yml", "files")),
    ROOT / "roles" / "glb_common", ROOT / "glb_agent", ROOT / "pyproject.toml",
    # the DPDK director: its install tasks and its sources (built on the controller)
    ROOT / "roles" / "glb_director", ROOT / "dpdk", ROOT / "bpf",
]
BOOT_TIMEOUT = float(os.environ.get("GLB_VM_BOOT_TIMEOUT", "600"))


def _newest_input() -> float:
    newest = 0.0
    for top in INPUTS:
        paths = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for p in paths:
            if "__pycache__" in p.parts:
                continue
            newest = max(newest, p.stat().st_mtime)
    return newest


@pytest.fixture(scope="module")
def image() -> Path:
    if not IMAGE.exists() or IMAGE.stat().st_mtime < _newest_input():
        t0 = time.monotonic()
        subprocess.run([str(ROOT / "image" / "build.sh")], check=True, timeout=1800)
        print(f"image build: {time.monotonic() - t0:.1f} s")
    return IMAGE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Booted:
    def __init__(self, rundir: Path, port: int, key: Path, boot_s: float) -> None:
        self.rundir, self.port, self.key, self.boot_s = rundir, port, key, boot_s

    def run(self, command: str, timeout: float = 120) -> str:
        res = vm.ssh(self.port, self.key, command, timeout=timeout)
        assert res.returncode == 0, f"{command!r} failed ({res.returncode}): {res.stdout}{res.stderr}"
        return res.stdout.strip()

    def put(self, path: str, data: bytes) -> None:
        res = subprocess.run(vm.ssh_argv(self.port, self.key, f"cat > {path}"), input=data,
                             capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr

    def get(self, path: str) -> bytes:
        res = subprocess.run(vm.ssh_argv(self.port, self.key, f"cat {path}"), capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout


@pytest.fixture(scope="module")
def booted(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing although image/build.sh installs it")
    rundir = tmp_path_factory.mktemp("vm")
    key = rundir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = _free_port()
    params = ["glb.hostname=glb-boot-test", "glb.dns=10.0.2.3", vm.key_param(key.with_suffix(".pub"))]
    # Two vCPUs and 1 GiB: the DPDK director's lcore (1) busy-polls while the role is applied
    # again, and its hugepages come out of the VM's memory.
    proc = vm.start("boot", rundir, port, params, image=image, lifetime=int(BOOT_TIMEOUT) + 900,
                    mem_mb=1024, cpus=2)
    try:
        boot_s = vm.wait_ssh(port, key, BOOT_TIMEOUT, alive=proc)
        print(f"boot to SSH: {boot_s:.1f} s")
        yield Booted(rundir, port, key, boot_s)
    except BaseException:
        console = rundir / "boot.console.log"
        if console.exists():
            print(console.read_text(errors="replace")[-4000:])
        raise
    finally:
        vm.stop_pid(proc.pid)
        proc.wait(timeout=30)


def test_fresh_machine_id_and_host_keys(booted: Booted) -> None:
    machine_id = booted.run("cat /etc/machine-id")
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id), machine_id
    # Generated on this boot by glb-firstboot: the image ships no host keys.
    log = booted.run("journalctl -b -u glb-firstboot.service --no-pager -o cat")
    assert "generating SSH host keys" in log, log
    boot_time = float(booted.run("stat -c %Y /proc/1"))
    for key in booted.run("ls /etc/ssh/ssh_host_*_key").split():
        assert float(booted.run(f"stat -c %Y {key}")) >= boot_time - 1, key


def test_boot_parameters_applied(booted: Booted) -> None:
    assert booted.run("hostname") == "glb-boot-test"
    assert "10.0.2.15/" in booted.run("ip -4 -o addr show dev eth0")


def test_agent_installed(booted: Booted) -> None:
    version = booted.run("/opt/glb/venv/bin/glb-agent --version")
    assert re.search(r"\d+\.\d+\.\d+", version), version
    booted.run("/opt/glb/venv/bin/glb-agent validate /etc/glb/glb.yml")
    booted.run("/opt/glb/venv/bin/python -c 'import bcc'")
    # The headers bcc compiles against follow the image's kernel (glb_common image_build).
    booted.run("test -e /lib/modules/$(uname -r)/build/Makefile")
    units = booted.run(
        "/opt/glb/venv/bin/python -c 'from glb_agent.systemd import UNITS; print(\" \".join(UNITS))'"
    )
    # The image carries this checkout's agent: the same unit templates (the DPDK director's
    # unit included), not a stale wheel's.
    assert units.split() == list(UNITS)


def test_units_and_sysctls(booted: Booted) -> None:
    for unit in ("glb-firstboot.service", "ssh.service", "systemd-networkd.service", "serial-getty@ttyS0.service"):
        assert booted.run(f"systemctl is-enabled {unit}") == "enabled", unit
        assert booted.run(f"systemctl is-active {unit}") == "active", unit
    failed = booted.run("systemctl list-units --failed --no-legend --plain")
    assert failed == "", failed
    # Written by glb_common in the chroot, not applied there: systemd-sysctl applies them at boot.
    assert booted.run("sysctl -n net.ipv4.conf.all.rp_filter") == "2"
    assert booted.run("sysctl -n net.core.bpf_jit_enable") == "1"


def test_serial_console(booted: Booted) -> None:
    console = (booted.rundir / "boot.console.log").read_text(errors="replace")
    assert "Linux version" in console  # the kernel logs to ttyS0
    deadline = time.monotonic() + 60
    while "login:" not in console and time.monotonic() < deadline:
        time.sleep(2)
        console = (booted.rundir / "boot.console.log").read_text(errors="replace")
    assert "login:" in console, console[-2000:]


# --- the DPDK director in the image ---------------------------------------------------------
# Last in the module: the role-apply test leaves the DPDK director busy-polling in the VM.

INSTALLED = "/opt/glb/dpdk/glb-director-dpdk"
VENV_PY = "/opt/glb/venv/bin/python"


def test_dpdk_director_in_image(booted: Booted, tmp_path: Path) -> None:
    """The agent resolves the installed binary, and that binary forwards like this checkout's."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from tests.dataplane.conftest import GW_MAC, SOURCE_IP, SRC_MAC, WEB, make_rows
    from tests.dpdk.harness import dpdk_unavailable, read_pcap, run_pcap, write_krows, write_pcap

    resolved = booted.run(f"{VENV_PY} -c 'from glb_agent.dataplane.dpdk import default_binary; "
                          "print(default_binary())'")
    assert resolved == INSTALLED
    booted.run("test -f /opt/glb/dpdk/glb-steer.bpf.o")
    ldd = booted.run(f"ldd {INSTALLED}")
    assert "not found" not in ldd, ldd

    frames = [bytes(Ether(src="02:00:00:00:00:aa", dst=SRC_MAC) / IP(src=f"198.51.100.{i}", dst="203.0.113.10")
                    / TCP(sport=40000 + i, dport=80, flags="S")) for i in range(1, 9)]
    conf, table = write_krows(tmp_path, [(WEB, make_rows(4, 1))], ("src_addr",), GW_MAC, SOURCE_IP)
    write_pcap(tmp_path / "in.pcap", frames)
    booted.run("mkdir -p /root/dpdk-test && rm -f /root/dpdk-test/out.pcap /root/dpdk-test/stats.json")
    for f in (conf, table, tmp_path / "in.pcap"):
        booted.put(f"/root/dpdk-test/{f.name}", f.read_bytes())
    t0 = time.monotonic()
    booted.run(f"{INSTALLED} --no-huge --no-shconf -m 128 --no-pci -l 0 --log-level=error "
               "--vdev net_pcap0,rx_pcap=/root/dpdk-test/in.pcap,tx_pcap=/root/dpdk-test/out.pcap -- "
               f"--config /root/dpdk-test/{conf.name} --table /root/dpdk-test/{table.name} --src-mac {SRC_MAC} "
               "--stats /root/dpdk-test/stats.json --idle-exit-ms 500", timeout=180)
    print(f"glb-director-dpdk over net_pcap in the VM: {time.monotonic() - t0:.1f} s")
    stats = json.loads(booted.get("/root/dpdk-test/stats.json"))
    assert stats["ports"]["rx"] == len(frames) and stats["ports"]["tx"] == len(frames), stats
    (tmp_path / "vm-out.pcap").write_bytes(booted.get("/root/dpdk-test/out.pcap"))
    in_vm = read_pcap(tmp_path / "vm-out.pcap")
    assert len(in_vm) == len(frames)
    # The same frames through this checkout's build on the host (scripts/setup.sh builds it).
    assert dpdk_unavailable() is None, dpdk_unavailable()
    (tmp_path / "host").mkdir()
    here = run_pcap(tmp_path / "host", frames, conf, table, src_mac=SRC_MAC)
    assert here.forwarded == in_vm


VM_GLB_YML = """\
fleet:
  name: vmtest
  secret: vm-test-secret-not-for-production
  hash_fields: [src_addr]
bgp:
  local_asn: 65100
  peers:
    - {name: r1, address: 198.18.0.1, asn: 65000}
directors:
  - name: d1
    address: 198.18.0.11
    interface: glbv0
    gateway_mac: "02:47:4c:00:00:01"
    dataplane: dpdk
    dpdk: {lcores: "1", memory_mb: 128, hugepages: true}
proxies:
  - {name: p1, address: 198.18.0.21, interface: eth0}
services:
  - name: web
    vips: [203.0.113.10]
    ports: [80]
    backends:
      - address: 198.18.0.21
"""
# In netns glbt (the "router" side of the veth, with glb.yml's gateway MAC): a SYN to the VIP,
# and the first GUE frame (UDP 19523) the director sends back, as "outer-src outer-dst".
SYN_AND_CATCH = r"""
import socket, time
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
cap.bind(("glbv1", 0))
cap.settimeout(0.5)
c = socket.socket()
c.setblocking(False)
c.connect_ex(("203.0.113.10", 80))
deadline = time.time() + 20
while time.time() < deadline:
    try:
        f = cap.recv(4096)
    except socket.timeout:
        continue
    if f[12:14] == b"\x08\x00" and f[23] == 17 and f[36:38] == (19523).to_bytes(2, "big"):
        print(socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34]))
        break
else:
    raise SystemExit("no GUE frame back from the director")
"""


def _apply(booted: Booted, tmp_path: Path, playbook: str) -> tuple[str, float]:
    inv = tmp_path / "inv"
    if not inv.exists():
        (inv / "group_vars/all").mkdir(parents=True)
        (inv / "group_vars/all/glb.yml").write_text(VM_GLB_YML)
        (inv / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"d1": {
            "ansible_host": "127.0.0.1", "ansible_port": booted.port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(booted.key), "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": " ".join(vm.SSH_OPTS), "glb_name": "d1",
            # method mount: the sysctl and a hugetlbfs mount; 96 x 2 MiB for memory_mb 128
            "glb_director_hugepages_method": "mount", "glb_director_nr_hugepages": 96,
        }}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    t0 = time.monotonic()
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv / "hosts.yml"),
                          str(ROOT / "tests/image" / playbook)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    took = time.monotonic() - t0
    out = res.stdout + res.stderr
    if res.returncode != 0:
        journal = vm.ssh(booted.port, booted.key, "journalctl -u glb-director -u glb-director-dpdk --no-pager"
                         " | tail -30").stdout
        pytest.fail(f"{playbook} failed:\n{out[-6000:]}\njournal:\n{journal}")
    recap = re.search(r"^d1 +: (ok=.*)$", out, re.M)
    assert recap, out[-3000:]
    return recap.group(1), took


def test_glb_director_role_switches_the_image_to_dpdk(booted: Booted, tmp_path: Path) -> None:
    # The director's NIC: a veth whose peer (in netns glbt) plays the router, gateway MAC and all.
    booted.run("ip netns add glbt && ip link add glbv0 type veth peer name glbv1 netns glbt"
               " && ip addr add 198.18.0.11/24 dev glbv0 && ip link set glbv0 up"
               " && ip -n glbt link set glbv1 address 02:47:4c:00:00:01 up"
               " && ip -n glbt addr add 198.18.0.1/24 dev glbv1"
               " && ip -n glbt route add 203.0.113.0/24 via 198.18.0.11")
    recap, first_s = _apply(booted, tmp_path, "dpdk-director.yml")
    print(f"glb_director role, first run: {first_s:.1f} s ({recap})")

    # The runtime came from the image: apt had nothing to install (no network needed).
    for pkg in ("dpdk", "librte-rcu23", "librte-mempool-ring23", "librte-net-af-xdp23"):
        assert booted.run(f"dpkg-query -W -f='${{Status}}' {pkg}") == "install ok installed", pkg
    # Hugepages reserved now (not at the next boot) and the hugetlbfs mount active.
    assert booted.run("cat /proc/sys/vm/nr_hugepages") == "96"
    assert booted.run("findmnt -n -o FSTYPE /dev/hugepages-glb") == "hugetlbfs"
    for unit in ("glb-director.service", "exabgp.service", "glb-director-dpdk.service"):
        booted.run(f"test -f /etc/systemd/system/{unit}")
        assert booted.run(f"systemctl is-enabled {unit}") == "enabled", unit
    # The agent started the DPDK director through its unit, from the installed binary, on hugepages.
    assert booted.run("systemctl is-active glb-director.service glb-director-dpdk.service").split() == ["active"] * 2
    pid = booted.run("systemctl show -p MainPID --value glb-director-dpdk.service")
    assert booted.run(f"readlink /proc/{pid}/exe") == INSTALLED
    stats = json.loads(booted.get("/run/glb/director/dpdk/stats.json"))
    assert stats["loaded"] and stats["pid"] == int(pid), stats
    meminfo = booted.run("grep -E '^HugePages_(Total|Free):' /proc/meminfo").split()
    assert int(meminfo[3]) < int(meminfo[1]) == 96, meminfo  # some are in use

    # Traffic: the VIP's SYN through the steering program to DPDK and back in GUE to the proxy;
    # the director's own address still served by the kernel (steering passes it): sshd answers.
    banner = booted.run("ip netns exec glbt python3 -c 'import socket; "
                        "print(socket.create_connection((\"198.18.0.11\", 22), timeout=20).recv(64))'", timeout=60)
    assert "SSH-2.0" in banner, banner
    outer = booted.run(f"ip netns exec glbt python3 -c '{SYN_AND_CATCH}'", timeout=60)
    assert outer == "198.18.0.11 198.18.0.21", outer
    stats = json.loads(booted.get("/run/glb/director/dpdk/stats.json"))
    assert stats["ports"]["rx"] >= 1 and stats["counters"]["web"]["forwarded_packets"] >= 1, stats

    # Idempotence of the DPDK tasks, with the services stopped (see dpdk-director-again.yml).
    booted.run("systemctl stop exabgp.service glb-director.service glb-director-dpdk.service")
    recap, second_s = _apply(booted, tmp_path, "dpdk-director-again.yml")
    print(f"glb_director DPDK tasks, second run: {second_s:.1f} s ({recap})")
    assert re.search(r"changed=0 .*failed=0", recap), recap
