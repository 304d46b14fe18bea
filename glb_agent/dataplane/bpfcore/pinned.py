"""The attach-and-adopt model both data planes share: pinned XDP link + pinned maps + meta.

One bpffs directory per data plane and interface (``glb_agent.util.paths.pin_dir``) holds

* ``link``: the XDP *BPF link*. It owns the attachment, so the program keeps forwarding
  after the agent exits, ``BPF_LINK_UPDATE`` swaps programs atomically (no packet sees
  none), and no other tool can silently replace it (netlink attach answers EBUSY);
* the program's maps, under their C names;
* ``meta``: the loader's bookkeeping, a one-entry array map created from userspace that
  holds JSON (build signature, program id, attach mode, interface, and whatever the loader
  adds). A restarted agent compares it with what it would build: same build and the link
  still runs the pinned program -> adopt (open the pins, touch nothing); otherwise build,
  then swap through the link.

Hosts upgraded in place still run what an older release pinned at the legacy paths
(``paths.legacy_pin_dir``): the director with a link at /sys/fs/bpf/glb/<if>, the proxy
attached through *netlink* at /sys/fs/bpf/glb-proxy/<if>. ``migrate`` renames that
directory to the new place (one rename in bpffs, the objects and the attachment are
untouched) and converts its bookkeeping, so adoption proceeds as above without a traffic
gap. The kernel refuses to turn a netlink attachment into a link without detaching it
first (a gap), so an adopted netlink attachment is marked ``"attach": "netlink"`` in meta
and swapped with netlink's atomic ``XDP_FLAGS_REPLACE`` until the next ``remove`` (or a
reboot); every attachment made from then on is a link. Readers that must not change
anything (BGP readiness, ``status``) call ``location`` instead, which finds the legacy
directory while the migration has not happened yet, so an upgrade never withdraws a VIP.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from glb_agent.dataplane.bpfcore import binding
from glb_agent.dataplane.bpfcore.maps import META_BYTES, Map, decode_meta, encode_meta
from glb_agent.dataplane.bpfcore.xdp import Attachment, XdpMode, attached, interface_index
from glb_agent.errors import GlbError, InputError
from glb_agent.util import paths

LINK_PIN = "link"
META_PIN = "meta"
PROG_PIN = "prog"  # only for an adopted netlink attachment (see the module docstring)
LOCK_DIR = Path("/run/lock")

LegacyMeta = Callable[[Path], dict]


def ensure_bpffs() -> None:
    root = paths.BPFFS_ROOT
    if not root.is_dir() or not os.path.ismount(root):
        raise GlbError(f"{root} is not a mounted bpffs (mount -t bpf bpf {root})")


def check_pin_dir(pin_dir: Path) -> None:
    if not pin_dir.is_absolute() or paths.BPFFS_ROOT not in pin_dir.parents:
        raise InputError(f"pin_dir {pin_dir} must be a directory under {paths.BPFFS_ROOT}")


class PinnedXdp:
    """One XDP program on one interface, as the pins in ``pin_dir``; holds the link fd.

    ``legacy_meta(dir)`` turns what an older release pinned in ``dir`` into this layout's
    meta (it is only called by ``migrate``).
    """

    def __init__(self, kind: paths.DataPlaneKind, interface: str, pin_dir: Path | None = None, *,
                 legacy_meta: LegacyMeta | None = None) -> None:
        self.kind = kind
        self.interface = interface
        self.pin_dir = Path(pin_dir) if pin_dir is not None else paths.pin_dir(kind, interface)
        self._legacy_meta = legacy_meta
        self.link_fd: int | None = None

    # -- where ------------------------------------------------------------------------------

    @property
    def legacy_dir(self) -> Path | None:
        """The pre-layout directory to adopt from; None for a custom ``--pin-dir``."""
        if self.pin_dir != paths.pin_dir(self.kind, self.interface):
            return None
        legacy = paths.legacy_pin_dir(self.kind, self.interface)
        if legacy in (paths.PIN_ROOT / "director", paths.PIN_ROOT / "proxy"):
            return None  # an interface named like a kind: the legacy dir is our root
        return legacy

    def location(self) -> Path:
        """Where the pins are now: ``pin_dir``, or the legacy directory before ``migrate``."""
        legacy = self.legacy_dir
        if legacy is not None and not _has_pins(self.pin_dir) and _has_pins(legacy):
            return legacy
        return self.pin_dir

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer per pin directory: two loaders interleaving (a generation write, a
        program swap) could leave a half-written state live."""
        lock_dir = LOCK_DIR if LOCK_DIR.is_dir() else Path("/tmp")
        name = hashlib.sha256(str(self.pin_dir).encode()).hexdigest()[:16]
        with open(lock_dir / f"glb-{self.kind}-{name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def migrate(self) -> str | None:
        """Move what an older release pinned at the legacy path here; returns the old path.

        Call with ``lock`` held, before opening anything. The directory is renamed in one
        step, so the running program, its maps and its attachment are untouched.
        """
        legacy = self.legacy_dir
        if legacy is None or _has_pins(self.pin_dir) or not _has_pins(legacy):
            return None
        ensure_bpffs()
        self.pin_dir.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError, OSError):
            self.pin_dir.rmdir()  # an empty leftover would make the rename fail
        os.rename(legacy, self.pin_dir)
        with contextlib.suppress(OSError):
            legacy.parent.rmdir()  # /sys/fs/bpf/glb-proxy once the last proxy moved
        if not (self.pin_dir / META_PIN).exists():
            meta = self._legacy_meta(self.pin_dir) if self._legacy_meta is not None else {}
            self.write_meta(meta | {"migrated_from": str(legacy)})
        return str(legacy)

    # -- bookkeeping ------------------------------------------------------------------------

    def read_meta(self, where: Path | None = None) -> dict:
        """The meta pinned in ``where`` (default: ``location()``); {} if there is none. In
        the legacy directory (before ``migrate``) it is what ``legacy_meta`` makes of it."""
        where = where or self.location()
        if not (where / META_PIN).exists():
            if where != self.pin_dir and where == self.legacy_dir and self._legacy_meta is not None:
                return self._legacy_meta(where)
            return {}
        return read_meta_map(where / META_PIN)

    def write_meta(self, meta: dict) -> None:
        """Replace the meta in ``pin_dir`` (creating and pinning its map the first time)."""
        path = self.pin_dir / META_PIN
        fd = binding.try_obj_get(path)
        if fd is None:
            fd = binding.map_create_array("glb_meta", META_BYTES)
            try:
                binding.obj_pin(fd, path)
            except OSError:
                binding.close(fd)
                raise
        try:
            binding.map_update(fd, b"\0" * 4, encode_meta(meta))
        finally:
            binding.close(fd)

    # -- the link ---------------------------------------------------------------------------

    def open_link(self, where: Path | None = None) -> binding.LinkInfo | None:
        """Open the pinned link (kept in ``link_fd``); its info, or None if none is pinned."""
        if self.link_fd is None:
            self.link_fd = binding.try_obj_get((where or self.pin_dir) / LINK_PIN)
        return binding.link_info(self.link_fd) if self.link_fd is not None else None

    def running(self, where: Path | None = None) -> tuple[Attachment | None, int | None]:
        """(what runs on the interface, our pinned program's id if it is that one).

        Our program is the one the pinned link holds, or for an adopted netlink attachment
        the one meta names. Raises NoSuchInterface if the interface is gone.
        """
        where = where or self.location()
        att = attached(self.interface)
        if att is None:
            return None, None
        fd = binding.try_obj_get(where / LINK_PIN)
        if fd is not None:
            try:
                link = binding.link_info(fd)
            finally:
                binding.close(fd)
            ours = link.prog_id if link.ifindex == att.ifindex else None
        else:
            meta = self.read_meta(where)
            ours = meta.get("prog_id") if meta.get("attach") == "netlink" else None
        return att, (ours if ours == att.prog_id else None)

    def attach(self, prog_fd: int, mode: XdpMode) -> str:
        """Attach ``prog_fd`` through a new link (auto: native, else generic), pin it, and
        return the mode. Refuses (EBUSY) to fight over an interface someone else uses."""
        ifindex = interface_index(self.interface)
        tries = ["native", "generic"] if mode == "auto" else [mode]
        last: OSError | None = None
        for name in tries:
            try:
                fd = binding.xdp_link_create(prog_fd, ifindex, name)
            except OSError as exc:
                last = exc
                if exc.errno == errno.EBUSY:
                    break  # something else is attached; never fight over it
                continue
            self.drop_link()
            self.link_fd = fd
            binding.obj_pin(fd, self.pin_dir / LINK_PIN)
            return name
        raise GlbError(f"attaching XDP to {self.interface} failed: {last}")

    def swap(self, prog_fd: int) -> None:
        """Make ``prog_fd`` the running program in one step (no packet sees none)."""
        info = self.open_link()
        if info is not None:
            binding.link_update(self.link_fd, prog_fd)  # type: ignore[arg-type]
            return
        meta = self.read_meta(self.pin_dir)
        if meta.get("attach") != "netlink":
            raise GlbError(f"nothing of ours is attached to {self.interface} to swap")
        old = binding.obj_get(self.pin_dir / PROG_PIN)
        try:
            binding.xdp_netlink_replace(interface_index(self.interface), prog_fd, meta["mode"], old)
        finally:
            binding.close(old)
        (self.pin_dir / PROG_PIN).unlink()
        binding.obj_pin(prog_fd, self.pin_dir / PROG_PIN)

    def detach(self) -> bool:
        """Detach our program (link or adopted netlink attachment); True if one was."""
        info = self.open_link()
        if info is not None:
            with contextlib.suppress(OSError):
                binding.link_detach(self.link_fd)  # type: ignore[arg-type]
            return info.ifindex != 0
        meta = self.read_meta(self.pin_dir)
        if meta.get("attach") == "netlink":
            try:
                att, ours = self.running(self.pin_dir)
            except GlbError:
                return False  # the interface is gone, and the attachment with it
            if att is not None and ours is not None:
                binding.xdp_netlink_detach(att.ifindex, att.mode)
                return True
        return False

    def drop_link(self) -> None:
        """Forget a stale link (its device went away): close it and remove its pin."""
        binding.close(self.link_fd)
        self.link_fd = None
        with contextlib.suppress(FileNotFoundError):
            (self.pin_dir / LINK_PIN).unlink()

    # -- maps -------------------------------------------------------------------------------

    def open_map(self, name: str, *, percpu: bool = False, where: Path | None = None) -> Map:
        path = (where or self.pin_dir) / name
        fd = binding.try_obj_get(path)
        if fd is None:
            raise GlbError(f"pinned map {path} is missing")
        return Map(fd, percpu=percpu)

    def pin_maps(self, fds: dict[str, int]) -> None:
        """Pin a freshly loaded program's maps, replacing older pins of the same names."""
        for name, fd in fds.items():
            with contextlib.suppress(FileNotFoundError):
                (self.pin_dir / name).unlink()
            binding.obj_pin(fd, self.pin_dir / name)

    def unpin(self, names: tuple[str, ...]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.pin_dir / name).unlink()

    # -- teardown ---------------------------------------------------------------------------

    def remove(self) -> bool:
        """Detach and remove every pin and the directory (and an empty parent); True if
        anything existed. Works on a program started by another process."""
        self.migrate()
        existed = self.pin_dir.exists()
        detached = self.detach() if existed else False
        self.close()
        if existed:
            for entry in self.pin_dir.iterdir():
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    entry.unlink()
            with contextlib.suppress(OSError):
                self.pin_dir.rmdir()
            with contextlib.suppress(OSError):
                self.pin_dir.parent.rmdir()  # the shared parent goes once the last one left
        return existed or detached

    def close(self) -> None:
        """Forget the link fd without touching the running program (as an agent exit does)."""
        binding.close(self.link_fd)
        self.link_fd = None


def read_meta_map(path: Path) -> dict:
    """The JSON document in the one-entry bookkeeping map pinned at ``path``; {} if there
    is none or it cannot be read (bookkeeping is advisory: no meta means "rebuild")."""
    fd = binding.try_obj_get(path)
    if fd is None:
        return {}
    try:
        return decode_meta(binding.map_lookup(fd, b"\0" * 4, binding.map_info(fd).value_size))
    except OSError:
        return {}
    finally:
        binding.close(fd)


def _has_pins(directory: Path) -> bool:
    return any((directory / name).exists() for name in (LINK_PIN, META_PIN, PROG_PIN))
