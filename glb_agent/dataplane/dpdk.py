"""The DPDK director (dpdk/, build/dpdk/glb-director-dpdk) driven like the XDP one.

Same surface as ``XdpDirector`` (``start``, ``update_tables``, ``counters``, ``close``,
``stop``) so the director agent can hold either. The difference is that the data plane is a
separate process, fed through files rather than maps:

* ``update_tables`` writes ``director.conf`` (upstream's JSON plus ``table_names``, with
  ``alt_hash_fields`` while hash fields migrate) and ``forwarding_rows.bin`` (our K-candidate
  format, ``encode_krows``: the same send-order rows the XDP director's maps get, compiled by
  the same code) atomically into the state directory, then
  starts the process (first time) or sends it SIGHUP, and waits until the stats file shows
  the new generation. The process builds the complete table set and swaps it under RCU.
  A bad file never becomes live: the process keeps its last good set and says so.
* ``counters`` and readiness come from the process's stats file (the same per-service,
  per-reason cells as ``DirectorState.counters``), so status and metrics need nothing else.
* The process runs in its own session, so ``close`` (agent restart) leaves it forwarding,
  and ``start`` adopts it again through its pid file; ``stop`` ends it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Director as DirectorConfig
from glb_agent.dataplane.director import DirectorDataPlane, DirectorSettings, Tables, XdpDirector
from glb_agent.dataplane.director_maps import CompiledTables, compile_tables
from glb_agent.errors import GlbError, InputError
from glb_agent.table import upstream_bin
from glb_agent.table.spec import TABLE_ROWS, UPSTREAM_MAX_BINDS, TableSpec
from glb_agent.util.files import write_atomic

REPO_BINARY = Path(__file__).resolve().parents[2] / "build" / "dpdk" / "glb-director-dpdk"
BINARY_NAME = "glb-director-dpdk"
STEER_OBJECT = "glb-steer.bpf.o"  # next to the binary, in the build and when installed
# Where the glb_director role (tasks/dpdk_install.yml) and the appliance image install the
# controller's build: the binary and the steering object side by side, as in build/dpdk/.
INSTALLED_DIR = Path("/opt/glb/dpdk")
INSTALLED_BINARY = INSTALLED_DIR / BINARY_NAME
# The process's own unit; glb_agent.systemd renders it under the same name (DPDK_UNIT; the
# layers do not import each other, tests/dpdk/test_dpdk_unit.py checks they agree).
DPDK_UNIT = "glb-director-dpdk.service"
HASH_FIELDS = ("src_addr", "dst_addr", "src_port", "dst_port")
# The process's limits (dpdk/src/glb_dp.h: GLB_DP_MAX_TABLES, GLB_DP_MAX_BINDS per family).
MAX_TABLES = 256
MAX_BINDS = 1024

# forwarding_rows.bin (dpdk/src/tables.c, parse_krows; docs/director-dataplane.md): upstream's
# header and bind layout, rows as send orders of addresses rather than two backend indices.
KROWS_MAGIC = b"GLBK"
KROWS_VERSION = 1
_KROWS_HEADER = struct.Struct("<5I")  # version, num_tables, table_entries, row_width, max_num_binds
_BIND = struct.Struct("<I16sHHHBB")  # as upstream_bin: family, address, bits, port range, proto
_COUNT = struct.Struct("<I")


def encode_krows(specs: Sequence[TableSpec], compiled: CompiledTables) -> bytes:
    """The K-candidate table file for ``compiled`` (compile_tables of ``specs``, in order)::

        "GLBK"
        header: u32 version=1, num_tables, table_entries=0x10000, row_width K (1-8),
                max_num_binds=256
        per table:
            u32 num_binds, then max_num_binds x {u32 family (1 IPv4, 2 IPv6), 16-byte
                address, u16 ip_bits, u16 port_start, u16 port_end, u8 proto, u8 reserved}
            16-byte hash_key
            0x10000 x K x 4-byte IPv4 address (network order): the row's send order,
                destination first, 0.0.0.0 only at the end (unused); all zero for a table
                without backends (its packets are dropped and counted)

    Integers little-endian, as upstream's file. The rows are byte for byte what the XDP
    director's glb_rows map holds, so both directors send a flow the same way.
    """
    width = compiled.rows[0].shape[1] if compiled.rows else 2
    header = _KROWS_HEADER.pack(KROWS_VERSION, len(specs), TABLE_ROWS, width, UPSTREAM_MAX_BINDS)
    parts = [KROWS_MAGIC, header]
    for spec, rows in zip(specs, compiled.rows, strict=True):
        if len(spec.binds) > UPSTREAM_MAX_BINDS:
            raise InputError(f"{len(spec.binds)} binds, the format holds {UPSTREAM_MAX_BINDS}",
                             where=f"table {spec.name!r}")
        parts.append(_COUNT.pack(len(spec.binds)))
        for bind in spec.binds:
            addr = bind.stored_address
            parts.append(_BIND.pack(upstream_bin.FAMILY[addr.version], addr.packed.ljust(16, b"\0"),
                                    bind.network.prefixlen, bind.port_start, bind.port_end,
                                    upstream_bin.PROTO_CODE[bind.proto], 0))
        parts.append(bytes(_BIND.size * (UPSTREAM_MAX_BINDS - len(spec.binds))))
        parts.append(bytes(spec.hash_key))
        parts.append(rows.tobytes())  # ROW_DTYPE: big-endian u32 = the wire bytes
    return b"".join(parts)


def default_binary() -> Path:
    """The one lookup of the DPDK director binary: $GLB_DPDK_BINARY, else this checkout's
    build (``make dpdk``: an agent run from a source tree uses the tree's build), else the
    installed copy ``/opt/glb/dpdk/glb-director-dpdk`` (role glb_director, the image). The
    steering object is taken from the same directory (``dpdk_options``)."""
    if os.environ.get("GLB_DPDK_BINARY"):
        return Path(os.environ["GLB_DPDK_BINARY"])
    if REPO_BINARY.exists():
        return REPO_BINARY
    return INSTALLED_BINARY


@dataclass(frozen=True)
class DpdkOptions:
    """How the DPDK process is run: its EAL options (lcores, memory, the port's --vdev or PCI
    address), which port forwards, the af_xdp interface whose steering maps follow the binds,
    and the directory for its files (tables, stats, pid, log)."""

    eal_args: tuple[str, ...]
    state_dir: Path
    port: int = 0
    host_port: int | None = None
    steer_interface: str | None = None
    binary: Path = REPO_BINARY  # default_binary() for the agent
    stats_interval_ms: int = 200
    timeout: float = 30.0  # for a start or a reload to show in the stats file
    # glb-director-dpdk.service when installed on a systemd host: the process then runs in
    # that unit's cgroup (an agent restart leaves it alone) instead of as the agent's child
    systemd_unit: str | None = None


def conf_text(settings: DirectorSettings, names: Sequence[str]) -> str:
    """director.conf: upstream's JSON (alt_hash_fields only while migrating) + table_names."""
    s = settings
    conf: dict = {
        "outbound_gateway_mac": s.gateway_mac,
        "outbound_src_ip": str(s.source_ip),
        "hash_fields": {f: f in s.hash_fields for f in HASH_FIELDS},
    }
    if s.alt_hash_fields:  # upstream's key: the old fields while they migrate
        conf["alt_hash_fields"] = {f: f in s.alt_hash_fields for f in HASH_FIELDS}
    conf["table_names"] = list(names)
    return json.dumps(conf, indent=2) + "\n"


def render_files(settings: DirectorSettings, tables: Tables) -> tuple[str, bytes]:
    """(director.conf, forwarding_rows.bin) for ``tables``: validated and compiled by the XDP
    director's own code (compile_tables) at the process's limits, so an empty table is
    all-zero rows (dropped and counted) and a bad set raises InputError, nothing written."""
    tables = list(tables)
    if not tables:
        raise InputError("the DPDK director needs at least one table")
    opts = dataclasses.replace(settings.build_options("02:00:00:00:00:00", settings.mtu or 1500),
                               max_tables=MAX_TABLES, max_binds=MAX_BINDS)
    opts.validate()
    compiled = compile_tables(tables, opts)
    return conf_text(settings, compiled.names), encode_krows([spec for spec, _ in tables], compiled)


class DpdkDirector:
    """One DPDK director process for one forwarding port."""

    dataplane = "dpdk"  # directors[].dataplane

    def __init__(self, settings: DirectorSettings, options: DpdkOptions) -> None:
        self.settings = settings
        self.options = options
        self.dir = Path(options.state_dir)
        self.conf = self.dir / "director.conf"
        self.table = self.dir / "forwarding_rows.bin"
        self.stats_path = self.dir / "stats.json"
        self.pid_path = self.dir / "pid"
        self.log_path = self.dir / "director.log"
        self.pid: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """"adopted" when our process is already running, else "pending": the process starts
        with the first table set (it refuses to run without one)."""
        pid = self._running_pid()
        if pid is not None:
            self.pid = pid
            return "adopted"
        return "pending"

    def update_tables(self, tables: Tables) -> int:
        """Make exactly ``tables`` live; returns the generation the process reports."""
        conf, blob = render_files(self.settings, tables)  # validates before anything is written
        self.dir.mkdir(parents=True, exist_ok=True)
        changed = write_atomic(self.conf, conf)
        changed = write_atomic(self.table, blob) or changed
        pid = self._running_pid()
        if pid is None:
            return self._spawn()
        self.pid = pid
        before = self.stats()
        if not changed and before.get("loaded"):
            return int(before["generation"])
        want = int(before.get("generation", 0)) + 1
        errors = int(before.get("reload_errors", 0))
        os.kill(pid, signal.SIGHUP)
        st = self._wait(lambda s: s.get("generation", 0) >= want or s.get("reload_errors", 0) > errors)
        if st.get("generation", 0) < want:
            raise GlbError(f"DPDK director refused the new tables: {st.get('last_error')}")
        return int(st["generation"])

    def counters(self) -> dict[str, dict[str, int]]:
        return dict(self.stats().get("counters", {}))

    def stats(self) -> dict:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def ready(self) -> tuple[bool, str]:
        """Forwarding with a loaded table set, and its stats are fresh (for the BGP feed)."""
        pid = self._running_pid()
        if pid is None:
            return False, "DPDK director not running"
        st = self.stats()
        if st.get("pid") != pid or not st.get("loaded"):
            return False, "DPDK director has no table loaded yet"
        age = time.time() - float(st.get("updated", 0))
        if age > max(3.0, 5 * self.options.stats_interval_ms / 1000):
            return False, f"DPDK director stats are {age:.1f} s old (stuck?)"
        return True, f"DPDK director pid {pid} forwarding generation {st['generation']}"

    def close(self) -> None:
        """Let go; the process keeps forwarding (a restarted agent adopts it)."""
        self.pid = None

    def stop(self) -> bool:
        """End the process; True if one was running."""
        pid = self._running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.options.timeout
        while self._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self.pid_path.unlink(missing_ok=True)
        self.pid = None
        return True

    # --- internals ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        o = self.options
        if not o.binary.is_file():
            raise GlbError(f"{o.binary}: no DPDK director binary there (build it with `make dpdk`, or "
                           f"install it on a host with the glb_director role; see default_binary)")
        cmd = [str(o.binary), *o.eal_args, "--", "--config", str(self.conf), "--table", str(self.table),
               "--port", str(o.port), "--stats", str(self.stats_path),
               "--stats-interval-ms", str(o.stats_interval_ms)]
        if o.host_port is not None:
            cmd += ["--host-port", str(o.host_port)]
        if o.steer_interface:
            cmd += ["--xdp-steer", o.steer_interface]
        if self.settings.mtu:
            cmd += ["--mtu", str(self.settings.mtu)]
        return cmd

    def exec_process(self, tables: Tables) -> None:
        """Become the DPDK process (``glb-agent director exec``, the systemd unit's
        ExecStart): the table files the agent last wrote, or ``tables`` when there are none
        yet; the pid file names this process, which keeps its pid across the exec."""
        if not (self.conf.exists() and self.table.exists()):
            conf, blob = render_files(self.settings, tables)
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.conf, conf)
            write_atomic(self.table, blob)
        self.stats_path.unlink(missing_ok=True)
        write_atomic(self.pid_path, f"{os.getpid()}\n")
        cmd = self.command()
        os.execv(cmd[0], cmd)

    def _spawn(self) -> int:
        self.stats_path.unlink(missing_ok=True)
        if self.options.systemd_unit:
            return self._spawn_unit(self.options.systemd_unit)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        self.pid = proc.pid
        write_atomic(self.pid_path, f"{proc.pid}\n")
        deadline = time.monotonic() + self.options.timeout
        while time.monotonic() < deadline:
            rc = proc.poll()
            if rc is not None:
                self.pid_path.unlink(missing_ok=True)
                raise GlbError(f"DPDK director exited {rc}: {self._log_tail()}")
            st = self.stats()
            if st.get("pid") == proc.pid and st.get("loaded"):
                return int(st["generation"])
            time.sleep(0.05)
        raise GlbError(f"DPDK director did not report a loaded table within {self.options.timeout:.0f} s")

    def _spawn_unit(self, unit: str) -> int:
        """Start the process through its unit (the files are written) and wait until the
        process the pid file names reports the loaded tables."""
        res = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise GlbError(f"systemctl start {unit} failed: {res.stderr.strip() or res.returncode}")
        deadline = time.monotonic() + self.options.timeout
        while time.monotonic() < deadline:
            pid = self._running_pid()
            st = self.stats()
            if pid is not None and st.get("pid") == pid and st.get("loaded"):
                self.pid = pid
                return int(st["generation"])
            time.sleep(0.05)
        raise GlbError(f"{unit} did not report a loaded table within {self.options.timeout:.0f} s "
                       f"(journalctl -u {unit})")

    def _wait(self, pred) -> dict:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + self.options.timeout
        while time.monotonic() < deadline:
            st = self.stats()
            if st and pred(st):
                return st
            if self.pid is not None and not self._alive(self.pid):
                raise GlbError(f"DPDK director exited: {self._log_tail()}")
            time.sleep(0.05)
        raise GlbError("DPDK director did not report the reload in time")

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not self._alive(pid):
            return None
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return None
        return pid if Path(exe).name == self.options.binary.name else None

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text().strip().splitlines()[-1]
        except (OSError, IndexError):
            return "(no output)"


def dpdk_options(d: DirectorConfig, state_dir: Path, binary: Path | None = None) -> DpdkOptions:
    """The process for director ``d`` (``dataplane: dpdk``): its ``dpdk.eal_args``, else the
    director's interface as an af_xdp port with the steering program, so the host keeps
    using the NIC; files under ``<state_dir>/dpdk``."""
    binary = binary or default_binary()
    cfg = d.dpdk
    memory = ["--no-huge", "--no-shconf"] if not cfg.hugepages else ["--file-prefix", f"glb-{d.interface}"]
    if cfg.eal_args:
        return DpdkOptions(tuple(cfg.eal_args), state_dir / "dpdk", binary=binary,
                           systemd_unit=installed_unit())
    vdev = (f"net_af_xdp0,iface={d.interface},start_queue=0,queue_count={cfg.queues},"
            f"xdp_prog={binary.parent / STEER_OBJECT}")
    eal = (*memory, "-m", str(cfg.memory_mb), "-l", cfg.lcores, "--no-pci", "--log-level=error",
           "--vdev", vdev)
    return DpdkOptions(eal, state_dir / "dpdk", steer_interface=d.interface, binary=binary,
                       systemd_unit=installed_unit())


def installed_unit(unit_dir: Path = Path("/etc/systemd/system")) -> str | None:
    """glb-director-dpdk.service when systemd runs this host and the unit is installed (the
    glb_director role installs it for ``dataplane: dpdk``), else None (a child process)."""
    if Path("/run/systemd/system").is_dir() and (unit_dir / DPDK_UNIT).exists():
        return DPDK_UNIT
    return None


def make_director(loaded: LoadedConfig, name: str | None, settings: DirectorSettings,
                  state_dir: Path, dataplane: str | None = None) -> DirectorDataPlane:
    """The data plane ``directors[].dataplane`` asks for on this host, or the one named by
    ``dataplane`` (the agent looks for the other kind still forwarding at its start)."""
    d = this_director(loaded, name, strict=True)
    if (dataplane or d.dataplane) == "dpdk":
        return DpdkDirector(settings, dpdk_options(d, state_dir))
    return XdpDirector(settings)
