"""One pin and state layout (glb_agent.util.paths), and carrying state across an upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glb_agent.bgp.state import DrainState
from glb_agent.errors import InputError
from glb_agent.util import paths


def test_layout() -> None:
    assert paths.pin_dir("director", "eth0") == Path("/sys/fs/bpf/glb/director/eth0")
    assert paths.pin_dir("proxy", "bond0.7") == Path("/sys/fs/bpf/glb/proxy/bond0.7")
    assert paths.legacy_pin_dir("proxy", "eth0") == Path("/sys/fs/bpf/glb-proxy/eth0")
    assert paths.proxy_state_dir() == Path("/run/glb/proxy")
    assert paths.proxy_state_dir("/tmp/x") == Path("/tmp/x")
    for bad in ("", "..", "a/b", "x" * 16):
        with pytest.raises(InputError, match="not a valid interface name"):
            paths.pin_dir("director", bad)


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / "glb")
    monkeypatch.setitem(paths.LEGACY_STATE_DIRS, "director", tmp_path / "glb")
    monkeypatch.setitem(paths.LEGACY_STATE_DIRS, "proxy", tmp_path / "glb-agent" / "proxy")
    monkeypatch.delenv(paths.STATE_DIR_ENV, raising=False)
    return tmp_path / "glb"


def test_director_state_dir_precedence(state_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.director_state_dir() == state_root / "director"
    monkeypatch.setenv(paths.STATE_DIR_ENV, "/var/lib/glb")
    assert paths.director_state_dir() == Path("/var/lib/glb")
    assert paths.director_state_dir("/srv/x") == Path("/srv/x")


def test_a_drain_survives_the_upgrade_and_the_old_feed_keeps_seeing_the_truth(state_root: Path) -> None:
    """The old release drained into /run/glb; the new one reads /run/glb/director. The flag
    moves, and the old path becomes a symlink, so a feed of the old release still running
    sees drains and undrains made by the new one."""
    state_root.mkdir()
    DrainState(state_root).drain("maintenance")  # as the old release stored it
    (state_root / "bgp-feed.json").write_text(json.dumps({"announced": {}}))
    new = paths.director_state_dir()
    assert new == state_root / "director"
    assert DrainState(new).current() is not None, "still drained after the upgrade"
    old_view = state_root / "bgp-drain.json"
    assert old_view.is_symlink() and json.loads(old_view.read_text())["reason"] == "maintenance"
    DrainState(new).undrain()
    assert not old_view.exists()  # the old feed sees the undrain too
    DrainState(new).drain("again")
    assert json.loads(old_view.read_text())["reason"] == "again"
    assert paths.migrate_director_state(new) == []  # idempotent: symlinks are not moved twice


def test_proxy_state_moves_once(state_root: Path) -> None:
    legacy = paths.LEGACY_STATE_DIRS["proxy"]
    legacy.mkdir(parents=True)
    (legacy / "eth0.json").write_text("{}")
    new = paths.proxy_state_dir()
    assert paths.migrate_proxy_state(new, "eth0") is True
    assert (new / "eth0.json").read_text() == "{}" and not (legacy / "eth0.json").exists()
    assert paths.migrate_proxy_state(new, "eth0") is False
    assert paths.migrate_proxy_state(state_root / "elsewhere", "eth0") is False  # custom dir: untouched
