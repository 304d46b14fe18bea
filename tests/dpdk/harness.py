"""Running the DPDK director (build/dpdk/glb-director-dpdk) from tests and benches.

The director reads the agent's files (upstream director.conf + forwarding_table.bin), so the
harness writes exactly those, with the agent's own writers, from the same TableSpecs and rows
the XDP tests load into the XDP director's maps. Packets go in and out through the net_pcap
PMD: port 0 reads ``in.pcap`` and writes what the director forwards to ``out.pcap``, port 1
(the host port) writes what it passes to the kernel to ``pass.pcap``; everything else was
dropped. ``--idle-exit-ms`` ends the process once the input is exhausted.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glb_agent.table import upstream_bin
from glb_agent.table.spec import TableSpec

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("GLB_DPDK_BINARY", REPO / "build" / "dpdk" / "glb-director-dpdk"))
PMD_DIR = Path("/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0")
HASH_FIELDS = ("src_addr", "dst_addr", "src_port", "dst_port")
EXIT_USAGE = 2


def dpdk_unavailable() -> str | None:
    """Why the DPDK director cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (DPDK EAL)"
    if not BINARY.exists():
        return f"{BINARY} not built (make dpdk)"
    if not (PMD_DIR / "librte_net_pcap.so").exists():
        return "the net_pcap PMD (librte-net-pcap23) is not installed"
    return None


def af_xdp_unavailable() -> str | None:
    """Why the DPDK director cannot run on an af_xdp port here (a veth in a namespace, with
    the XDP programs that needs), or None."""
    from tests.support.netns import bpf_unavailable

    why = dpdk_unavailable() or bpf_unavailable()
    if why is None and not (PMD_DIR / "librte_net_af_xdp.so").exists():
        why = "the net_af_xdp PMD (librte-net-af-xdp23) is not installed"
    return why


def eal_args(*vdevs: str, lcores: str = "0", mem_mb: int = 128) -> list[str]:
    """EAL options for a hugepage-free, shared-state-free run (several may run at once).

    ``lcores`` is an lcore list ("0,1") or, with "@", an lcore-to-CPU map ("0@0,1@0,2@1"):
    more lcores than this host's two CPUs."""
    cores = ["--lcores", lcores] if "@" in lcores else ["-l", lcores]
    args = ["--no-huge", "--no-shconf", "-m", str(mem_mb), "--no-pci", *cores, "--log-level=error"]
    for v in vdevs:
        args += ["--vdev", v]
    return args


def write_tables(directory: Path, tables: Sequence[tuple[TableSpec, np.ndarray]], hash_fields: Sequence[str],
                 gateway_mac: str, source_ip: str) -> tuple[Path, Path]:
    """director.conf and forwarding_table.bin as the agent renders them for upstream directors."""
    conf = {
        "outbound_gateway_mac": gateway_mac,
        "outbound_src_ip": str(ipaddress.IPv4Address(source_ip)),
        "hash_fields": {f: f in hash_fields for f in HASH_FIELDS},
    }
    conf_path = directory / "director.conf"
    conf_path.write_text(json.dumps(conf, indent=2))
    table_path = directory / "forwarding_table.bin"
    upstream_bin.write(table_path, [s for s, _ in tables], [r for _, r in tables])
    return conf_path, table_path


def write_krows(directory: Path, tables: Sequence[tuple[TableSpec, np.ndarray | None]],
                hash_fields: Sequence[str], gateway_mac: str, source_ip: str, row_width: int = 4,
                alt_hash_fields: Sequence[str] = ()) -> tuple[Path, Path]:
    """director.conf and forwarding_rows.bin (K-wide send-order rows) as DpdkDirector writes
    them (glb_agent.dataplane.dpdk.render_files), from the same tables the XDP maps get."""
    from glb_agent.dataplane.director import DirectorSettings
    from glb_agent.dataplane.dpdk import render_files

    settings = DirectorSettings("d0", ipaddress.IPv4Address(source_ip), gateway_mac, tuple(hash_fields),
                                tuple(alt_hash_fields), row_width=row_width, mtu=1500)
    conf, blob = render_files(settings, tables)
    conf_path, table_path = directory / "director.conf", directory / "forwarding_rows.bin"
    conf_path.write_text(conf)
    table_path.write_bytes(blob)
    return conf_path, table_path


def write_pcap(path: Path, frames: Sequence[bytes]) -> None:
    """Classic pcap, Ethernet link type, microsecond timestamps."""
    out = bytearray((0xA1B2C3D4).to_bytes(4, "little") + (2).to_bytes(2, "little") + (4).to_bytes(2, "little")
                    + bytes(8) + (65535).to_bytes(4, "little") + (1).to_bytes(4, "little"))
    for i, f in enumerate(frames):
        out += (i // 1000000).to_bytes(4, "little") + (i % 1000000).to_bytes(4, "little")
        out += len(f).to_bytes(4, "little") * 2 + f
    path.write_bytes(bytes(out))


def read_pcap(path: Path) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return []
    endian = "little" if data[:4] == (0xA1B2C3D4).to_bytes(4, "little") or data[:4] == (0xA1B23C4D).to_bytes(
        4, "little") else "big"
    frames, pos = [], 24
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8 : pos + 12], endian)
        frames.append(data[pos + 16 : pos + 16 + caplen])
        pos += 16 + caplen
    return frames


@dataclass
class PcapRun:
    """What one run through net_pcap produced."""

    forwarded: list[bytes]  # out.pcap: XDP_TX frames, in input order
    passed: list[bytes]  # pass.pcap: XDP_PASS frames, in input order
    stats: dict  # the stats file at exit
    returncode: int
    stderr: str


def director_args(conf: Path, table: Path, *, names: Sequence[str] = (), src_mac: str | None = None,
                  mtu: int | None = None, stats: Path | None = None, extra: Sequence[str] = ()) -> list[str]:
    args = ["--config", str(conf), "--table", str(table)]
    if names:
        args += ["--table-names", ",".join(names)]
    if src_mac:
        args += ["--src-mac", src_mac]
    if mtu:
        args += ["--mtu", str(mtu)]
    if stats:
        args += ["--stats", str(stats)]
    return args + list(extra)


def run_pcap(workdir: Path, frames: Sequence[bytes], conf: Path, table: Path, *, names: Sequence[str] = (),
             src_mac: str | None = None, mtu: int | None = None, timeout: float = 60) -> PcapRun:
    """Runs the director once over ``frames`` (net_pcap in, two pcaps out)."""
    inp, out, passed, stats = (workdir / n for n in ("in.pcap", "out.pcap", "pass.pcap", "stats.json"))
    for p in (out, passed, stats):
        p.unlink(missing_ok=True)
    write_pcap(inp, frames)
    cmd = [str(BINARY), *eal_args(f"net_pcap0,rx_pcap={inp},tx_pcap={out}", f"net_pcap1,tx_pcap={passed}"), "--",
           *director_args(conf, table, names=names, src_mac=src_mac, mtu=mtu, stats=stats,
                          extra=["--host-port", "1", "--idle-exit-ms", "300"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    st = json.loads(stats.read_text()) if stats.exists() else {}
    return PcapRun(read_pcap(out), read_pcap(passed), st, proc.returncode, proc.stderr)


class Running:
    """A director process left running (for reloads and traffic tests); stop() ends it."""

    def __init__(self, cmd: Sequence[str], stats: Path, prefix: Sequence[str] = ()) -> None:
        self.stats_path = stats
        # A stats file left by an earlier process (a previous round) must not pass for ours:
        # wait_stats would signal this one before it has installed its handlers, killing it.
        stats.unlink(missing_ok=True)
        self.proc = subprocess.Popen([*prefix, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stats(self) -> dict:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_stats(self, pred, timeout: float = 30) -> dict:  # type: ignore[no-untyped-def]
        """Polls the stats file (SIGUSR1 makes the director write it now) until ``pred`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"director exited {self.proc.returncode}: {self.proc.stderr.read()}")
            if self.stats().get("pid") == self.proc.pid:  # handlers are installed once it has written one
                self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.05)
            st = self.stats()
            if st and pred(st):
                return st
        raise AssertionError(f"timed out; last stats: {json.dumps(self.stats())[:2000]}")

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read() if self.proc.stderr else ""
        return self.proc.returncode, err


def copy_atomic(src: Path, dst: Path) -> None:
    """Replace ``dst`` by ``src``'s bytes the way the agent does (temp file + rename)."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
