"""Boot test of the appliance image (image/build.sh) under qemu.

Builds the image when it is missing or older than its inputs (image/, roles/glb_common,
the agent's sources), boots a copy-on-write overlay of it from its own disk (SeaBIOS +
extlinux) under qemu TCG (KVM when available), with its per-machine settings given through
fw_cfg exactly as an operator would on the kernel command line, and checks over SSH:
a fresh machine-id and SSH host keys made on this boot, the hostname and authorized key from
the boot parameters, the agent (``/opt/glb/venv/bin/glb-agent --version``, bcc importable,
the installed glb.yml validates), the units the image ships enabled and active, the
glb_common sysctls applied by systemd at boot, and a login prompt on the serial console.

Gated: set GLB_VM_TESTS=1 (needs root for the build, qemu, ~2-8 min; see docs/image.md).
"""

from __future__ import annotations

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

    def run(self, command: str) -> str:
        res = vm.ssh(self.port, self.key, command)
        assert res.returncode == 0, f"{command!r} failed ({res.returncode}): {res.stdout}{res.stderr}"
        return res.stdout.strip()


@pytest.fixture(scope="module")
def booted(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing although image/build.sh installs it")
    rundir = tmp_path_factory.mktemp("vm")
    key = rundir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = _free_port()
    params = ["glb.hostname=glb-boot-test", "glb.dns=10.0.2.3", vm.key_param(key.with_suffix(".pub"))]
    proc = vm.start("boot", rundir, port, params, image=image, lifetime=int(BOOT_TIMEOUT) + 300)
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
