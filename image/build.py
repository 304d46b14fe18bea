"""Build the GLB appliance disk image (Debian bookworm, qcow2) from the Ansible roles.

Run through ``image/build.sh`` (installs the host tools first), as root:

    image/build.sh [--config GLB_YML] [--out DIR] [--rebuild-base]

Phases, each printed with its duration:

1. base: ``debootstrap --variant=minbase`` of bookworm with the kernel, systemd, sshd and
   python3, cached as ``image/cache/base-<hash>.tar`` (keyed by the package list and mirror);
   a second build only unpacks it.
2. roles: ``image/image.yml`` applied to the unpacked tree through the chroot connection
   (``community.general.chroot``, from the PyPI ``ansible`` package, installed into
   ``image/cache/collections``) with ``glb_image_build: true``. Downloaded .debs are kept in
   ``image/cache/debs`` and fed back on the next build.
3. finalize: first-boot handling (``glb-firstboot.service``, machine-id "uninitialized",
   no SSH host keys), systemd-networkd, serial console, fstab, extlinux.conf.
4. disk: ``mkfs.ext4 -d`` (whole-disk ext4, label glb-root), ``extlinux --install`` (one
   loop mount), ``qemu-img convert`` to qcow2; the kernel and initrd are copied next to it
   for ``-kernel`` boots.

The result is ``image/out/glb-appliance.qcow2`` plus ``vmlinuz``, ``initrd.img`` and
``build.json`` (phases, sizes, kernel command line).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# GLB_IMAGE_CACHE: another cache directory (e.g. an empty one, to time a cold build).
CACHE = Path(os.environ.get("GLB_IMAGE_CACHE", HERE / "cache")).resolve()
FILES = HERE / "files"
SUITE = "bookworm"
LABEL = "glb-root"
BASE_PACKAGES = [
    "linux-image-amd64", "systemd-sysv", "udev", "kmod", "initramfs-tools", "openssh-server",
    "python3", "python3-venv", "python3-apt", "iproute2", "ca-certificates", "procps",
]
# qemu's fw_cfg and virtio drivers are modules of Debian's kernel: make sure the initrd has
# the disk ones, so the image boots on virtio (qemu) and on SATA/NVMe/SCSI (metal).
INITRD_MODULES = ["virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net", "ext4"]
KERNEL_CMDLINE = f"root=LABEL={LABEL} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"
# Pinned to the ansible-core in the venv (2.16 -> ansible 9.x): only its collections are used.
ANSIBLE_COLLECTIONS_PACKAGE = "ansible==9.13.0"


def log(msg: str) -> None:
    print(f"[image] {msg}", flush=True)


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, **kw)  # type: ignore[call-overload]


class Phases:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.start = time.monotonic()

    @contextlib.contextmanager
    def phase(self, name: str, what: str) -> Iterator[None]:
        log(f"phase {name}: {what}")
        t0 = time.monotonic()
        yield
        self.times[name] = round(time.monotonic() - t0, 1)
        log(f"phase {name}: done in {self.times[name]:.1f} s")

    def total(self) -> float:
        return round(time.monotonic() - self.start, 1)


def apt_mirror() -> str:
    """The Debian mirror configured on this machine (deb822 or one-line sources)."""
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uris = suites = ""
        for line in src.read_text().splitlines():
            if line.startswith("URIs:"):
                uris = line.split(":", 1)[1].strip()
            elif line.startswith("Suites:"):
                suites = line.split(":", 1)[1].strip()
            elif not line.strip():
                if SUITE in suites.split() and uris:
                    return uris.split()[0]
                uris = suites = ""
        if SUITE in suites.split() and uris:
            return uris.split()[0]
    for lst in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if lst.is_file():
            for line in lst.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and SUITE in parts and "security" not in line:
                    return next(p for p in parts[1:] if p.startswith("http"))
    return "http://deb.debian.org/debian"


def base_tarball(mirror: str, rebuild: bool) -> Path:
    key = hashlib.sha256(json.dumps([SUITE, mirror, BASE_PACKAGES]).encode()).hexdigest()[:12]
    tar = CACHE / f"base-{key}.tar"
    if tar.is_file() and not rebuild:
        log(f"base: cached {tar}")
        return tar
    work = Path(tempfile.mkdtemp(prefix="debootstrap.", dir=CACHE))
    try:
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             SUITE, str(work), mirror], stdout=subprocess.DEVNULL)
        run(["tar", "-C", str(work), "--numeric-owner", "--xattrs", "-cf", f"{tar}.tmp", "."])
        os.replace(f"{tar}.tmp", tar)
    finally:
        remove_tree(work)
    return tar


def remove_tree(path: Path) -> None:
    """rm -rf that never descends into a mount (a bind-mounted /dev left by a failed umount)."""
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    busy = [m for m in mounts if m.startswith(prefix)]
    for mnt in sorted(busy, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def collections_path() -> Path:
    """community.general (chroot connection) from the PyPI ``ansible`` package, cached."""
    target = CACHE / "collections"
    if not (target / "ansible_collections" / "community" / "general").is_dir():
        log(f"installing {ANSIBLE_COLLECTIONS_PACKAGE} collections into {target}")
        run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--target", str(target), ANSIBLE_COLLECTIONS_PACKAGE])
    return target


@contextlib.contextmanager
def chroot_mounts(rootfs: Path) -> Iterator[None]:
    mounted: list[Path] = []
    try:
        for src, fstype in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", None), ("/dev/pts", None)):
            dst = rootfs / src.lstrip("/")
            dst.mkdir(parents=True, exist_ok=True)
            if fstype:
                run(["mount", "-t", fstype, fstype, str(dst)])
            else:
                run(["mount", "--bind", src, str(dst)])
            mounted.append(dst)
        yield
    finally:
        for dst in reversed(mounted):
            subprocess.run(["umount", str(dst)], check=False)


def apply_roles(rootfs: Path, config: Path) -> None:
    (rootfs / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
    resolv = rootfs / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", resolv)
    debs = CACHE / "debs"
    debs.mkdir(exist_ok=True)
    archives = rootfs / "var/cache/apt/archives"
    for deb in debs.glob("*.deb"):
        shutil.copy2(deb, archives / deb.name)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with chroot_mounts(rootfs):
        run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", f"{rootfs},",
             "-c", "community.general.chroot", "-e", f"glb_common_config_file={config}",
             "-e", "ansible_python_interpreter=/usr/bin/python3", str(HERE / "image.yml")],
            env=env, cwd=ROOT)
    for deb in archives.glob("*.deb"):
        if not (debs / deb.name).exists():
            shutil.copy2(deb, debs / deb.name)
    run(["chroot", str(rootfs), "apt-get", "clean"])
    (rootfs / "usr/sbin/policy-rc.d").unlink()


def kernel_files(rootfs: Path) -> tuple[str, str]:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise SystemExit(f"expected one kernel in /boot, found {[k.name for k in kernels]}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    return f"vmlinuz-{version}", f"initrd.img-{version}"


def finalize(rootfs: Path) -> None:
    etc = rootfs / "etc"
    (etc / "fstab").write_text(f"LABEL={LABEL} / ext4 errors=remount-ro 0 1\n")
    (etc / "hostname").write_text("glb\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    # First boot: systemd generates a fresh machine-id and runs ConditionFirstBoot units.
    (etc / "machine-id").write_text("uninitialized\n")
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("# written at boot by glb-firstboot (glb.dns=)\n")
    shutil.copy(FILES / "glb-firstboot", rootfs / "usr/local/sbin/glb-firstboot")
    shutil.copy(FILES / "glb-firstboot.service", etc / "systemd/system/glb-firstboot.service")
    modules = etc / "initramfs-tools/modules"
    modules.write_text(modules.read_text() + "".join(f"{m}\n" for m in INITRD_MODULES))
    run(["systemctl", f"--root={rootfs}", "enable", "glb-firstboot.service", "systemd-networkd.service",
         "ssh.service", "serial-getty@ttyS0.service"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run(["chroot", str(rootfs), "passwd", "-l", "root"], stdout=subprocess.DEVNULL)
    with chroot_mounts(rootfs):
        run(["chroot", str(rootfs), "update-initramfs", "-u", "-k", "all"], stdout=subprocess.DEVNULL)
    vmlinuz, initrd = kernel_files(rootfs)
    extlinux = rootfs / "boot/extlinux"
    extlinux.mkdir(parents=True, exist_ok=True)
    (extlinux / "extlinux.conf").write_text(
        "SERIAL 0 115200\nDEFAULT glb\nTIMEOUT 10\nPROMPT 0\n"
        f"LABEL glb\n  LINUX /boot/{vmlinuz}\n  INITRD /boot/{initrd}\n  APPEND {KERNEL_CMDLINE}\n"
    )
    # Logs and caches of the build do not belong in the image.
    for path in ("var/log/apt", "var/lib/apt/lists"):
        for f in (rootfs / path).glob("*"):
            if f.is_file():
                f.unlink()
    (rootfs / "root/.ansible").exists() and shutil.rmtree(rootfs / "root/.ansible")


def make_disk(rootfs: Path, out: Path) -> dict[str, int]:
    used = int(run(["du", "-sxb", str(rootfs)], capture_output=True).stdout.split()[0])
    size_mb = (int(used * 1.3) >> 20) + 512
    raw = out / "disk.raw"
    raw.unlink(missing_ok=True)
    # extlinux reads the filesystem at boot: keep to features syslinux 6.04 understands.
    run(["mkfs.ext4", "-q", "-F", "-L", LABEL, "-O", "^64bit,^metadata_csum_seed,^orphan_file",
         "-d", str(rootfs), str(raw), f"{size_mb}M"])
    mnt = Path(tempfile.mkdtemp(prefix="glb-image-mnt."))
    try:
        run(["mount", "-o", "loop", str(raw), str(mnt)])
        try:
            run(["extlinux", "--install", str(mnt / "boot/extlinux")], stdout=subprocess.DEVNULL)
        finally:
            run(["umount", str(mnt)])
    finally:
        mnt.rmdir()
    qcow = out / "glb-appliance.qcow2"
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), f"{qcow}.tmp"])
    os.replace(f"{qcow}.tmp", qcow)
    raw.unlink()
    vmlinuz, initrd = kernel_files(rootfs)
    shutil.copy(rootfs / "boot" / vmlinuz, out / "vmlinuz")
    shutil.copy(rootfs / "boot" / initrd, out / "initrd.img")
    return {"rootfs_bytes": used, "disk_mb": size_mb, "qcow2_bytes": qcow.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "inventories/lab/group_vars/all/glb.yml",
                    help="fleet YAML installed as /etc/glb/glb.yml (default: the lab's)")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="output directory (default image/out)")
    ap.add_argument("--rebuild-base", action="store_true", help="ignore the cached debootstrap tarball")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("image/build.py needs root (debootstrap, chroot, loop mount)")
    CACHE.mkdir(exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    phases = Phases()
    mirror = apt_mirror()
    work = Path(tempfile.mkdtemp(prefix="rootfs.", dir=CACHE))
    try:
        with phases.phase("base", f"debootstrap {SUITE} minbase from {mirror} (cached)"):
            tar = base_tarball(mirror, args.rebuild_base)
            run(["tar", "-C", str(work), "--numeric-owner", "--xattrs", "-xf", str(tar)])
        with phases.phase("roles", "glb_common through the chroot connection (glb_image_build)"):
            apply_roles(work, args.config.resolve())
        with phases.phase("finalize", "first boot, network, serial console, initrd, extlinux.conf"):
            finalize(work)
        with phases.phase("disk", "mkfs.ext4 -d, extlinux, qcow2"):
            sizes = make_disk(work, args.out)
    finally:
        remove_tree(work)
    report = {"phases_s": phases.times, "total_s": phases.total(), **sizes,
              "cmdline": KERNEL_CMDLINE, "config": str(args.config)}
    (args.out / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"image: {args.out / 'glb-appliance.qcow2'} ({sizes['qcow2_bytes'] / 2**20:.0f} MiB qcow2, "
        f"{sizes['disk_mb']} MiB virtual disk, {sizes['rootfs_bytes'] / 2**20:.0f} MiB of files)")
    per_phase = ", ".join(f"{k} {v:.1f} s" for k, v in phases.times.items())
    log(f"build time: {report['total_s']:.1f} s ({per_phase})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
