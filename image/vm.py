"""Boot GLB appliance VMs under qemu (KVM when usable, TCG otherwise) and reach them by SSH.

Used by tests/image/test_image_boot.py (as a module) and by the Molecule scenario's
create/destroy playbooks (as a command):

    python image/vm.py up --name d1 --dir RUNDIR --ssh-port 2201 --key KEY.pub \\
        [--tap TAP --mac MAC] [--param glb.net=eth0:198.18.0.11/24] [--lifetime 5400]
    python image/vm.py wait --dir RUNDIR --ssh-port 2201 --key KEY [--timeout 600]
    python image/vm.py down --dir RUNDIR

Every VM boots a copy-on-write overlay of image/out/glb-appliance.qcow2 from its own disk
(SeaBIOS + extlinux). Per-machine settings (glb.* parameters, see image/files/glb-firstboot)
reach the guest through qemu's fw_cfg (``opt/glb/cmdline``). The management NIC is qemu
user networking with the guest's port 22 forwarded to 127.0.0.1:SSH_PORT (and NAT to the
apt mirror); an optional second NIC is a tap on a host bridge (the fabric). qemu runs under
``timeout --lifetime``, so a VM nobody stops is still killed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE = HERE / "out" / "glb-appliance.qcow2"
SSH_OPTS = [
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
]


@functools.cache
def kvm_works(image: Path = IMAGE) -> bool:
    """/dev/kvm can be present and still fail (nested virt without unrestricted guest: "KVM
    internal error ... emulation failure" once the boot loader runs, with qemu left alive and
    paused): boot ``image`` (read-only, -snapshot) for a few seconds and read qemu's output."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    disk = ["-drive", f"file={image},if=virtio,format=qcow2,snapshot=on"] if image.exists() else []
    probe = subprocess.run(["timeout", "-s", "KILL", "6", "qemu-system-x86_64", "-accel", "kvm",
                            "-cpu", "host", "-display", "none", "-nodefaults", "-m", "256", *disk],
                           capture_output=True, text=True, check=False)
    failed = "KVM internal error" in probe.stdout + probe.stderr or "emulation failure" in probe.stderr
    return probe.returncode in (124, -9, 137) and not failed  # still running after 6 s, no error


def accel(image: Path = IMAGE) -> list[str]:
    """KVM when it works (GLB_VM_ACCEL=kvm|tcg forces), else TCG with a bounded translation cache."""
    choice = os.environ.get("GLB_VM_ACCEL", "auto")
    if choice == "kvm" or (choice == "auto" and kvm_works(image)):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,tb-size=256", "-cpu", "max"]


def qemu_argv(name: str, rundir: Path, ssh_port: int, params: list[str], *, mem_mb: int = 768, cpus: int = 1,
              tap: str | None = None, mac: str | None = None, image: Path = IMAGE) -> list[str]:
    overlay = rundir / f"{name}.qcow2"
    if not overlay.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image),
                        str(overlay)], check=True)
    argv = [
        "qemu-system-x86_64", *accel(image), "-smp", str(cpus), "-m", str(mem_mb), "-name", name,
        "-display", "none", "-vga", "none", "-parallel", "none", "-monitor", "none",
        "-serial", f"file:{rundir / f'{name}.console.log'}",
        "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
        # eth0 first: the fabric (glb.yml's interface), eth1 management, when a tap is given.
    ]
    if tap:
        argv += ["-netdev", f"tap,id=fab,ifname={tap},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev=fab,mac={mac}"]
    argv += ["-netdev", f"user,id=mgmt,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
             "-device", "virtio-net-pci,netdev=mgmt"]
    cmdline = " ".join(params)
    if "," in cmdline:
        raise ValueError("glb.* parameters cannot contain ',' (qemu -fw_cfg string syntax)")
    argv += ["-fw_cfg", f"name=opt/glb/cmdline,string={cmdline}"]
    return argv


def key_param(pubkey: Path) -> str:
    return "glb.ssh_key=" + base64.b64encode(pubkey.read_text().strip().encode()).decode()


def start(name: str, rundir: Path, ssh_port: int, params: list[str], *, lifetime: int = 1800,
          **kw: object) -> subprocess.Popen[bytes]:
    """qemu in its own session under `timeout`, so it dies after `lifetime` s at the latest."""
    argv = ["timeout", "-s", "KILL", str(lifetime), *qemu_argv(name, rundir, ssh_port, params, **kw)]  # type: ignore[arg-type]
    log = open(rundir / f"{name}.qemu.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    (rundir / f"{name}.qemu.pid").write_text(f"{proc.pid}\n")
    return proc


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """Terminate the process group of `pid` (timeout + qemu), then kill it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def ssh_argv(port: int, key: Path, command: str) -> list[str]:
    return ["ssh", *SSH_OPTS, "-i", str(key), "-p", str(port), "root@127.0.0.1", command]


def ssh(port: int, key: Path, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh_argv(port, key, command), capture_output=True, text=True, timeout=timeout)


def wait_ssh(port: int, key: Path, timeout: float = 600,
             alive: subprocess.Popen[bytes] | None = None) -> float:
    """Seconds until `ssh true` succeeds; raises TimeoutError (or RuntimeError if qemu died)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"qemu exited with {alive.returncode} before SSH came up")
        try:
            if ssh(port, key, "true", timeout=20).returncode == 0:
                return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)
    raise TimeoutError(f"no SSH on 127.0.0.1:{port} after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="boot a VM in the background")
    up.add_argument("--name", required=True)
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--ssh-port", type=int, required=True)
    up.add_argument("--key", type=Path, required=True, help="public key authorized for root")
    up.add_argument("--tap")
    up.add_argument("--mac")
    up.add_argument("--mem", type=int, default=768)
    up.add_argument("--param", action="append", default=[], help="glb.* boot parameter (repeatable)")
    up.add_argument("--lifetime", type=int, default=5400, help="kill qemu after this many seconds")
    up.add_argument("--image", type=Path, default=IMAGE)
    wait = sub.add_parser("wait", help="wait for SSH")
    wait.add_argument("--ssh-port", type=int, required=True)
    wait.add_argument("--key", type=Path, required=True, help="private key")
    wait.add_argument("--timeout", type=float, default=600)
    down = sub.add_parser("down", help="stop every VM started in DIR")
    down.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "up":
        args.dir.mkdir(parents=True, exist_ok=True)
        params = [*args.param, f"glb.hostname={args.name}", key_param(args.key)]
        proc = start(args.name, args.dir, args.ssh_port, params, lifetime=args.lifetime, tap=args.tap,
                     mac=args.mac, mem_mb=args.mem, image=args.image)
        print(proc.pid)
    elif args.cmd == "wait":
        print(f"{wait_ssh(args.ssh_port, args.key, args.timeout):.1f}")
    else:
        for pidfile in sorted(args.dir.glob("*.qemu.pid")):
            stop_pid(int(pidfile.read_text()))
            pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
