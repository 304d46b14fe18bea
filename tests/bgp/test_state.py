"""Drain flag and status file semantics that ``drain --wait`` relies on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glb_agent.bgp.state import STATE_DIR_ENV, DrainState, FeedStatus, state_dir
from glb_agent.cli import main


def test_state_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    assert state_dir() == Path("/run/glb/director")
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    assert state_dir() == tmp_path
    assert state_dir(tmp_path / "x") == tmp_path / "x"


def test_drain_flag_persists_until_undrain(tmp_path: Path) -> None:
    drain = DrainState(tmp_path)
    assert drain.current() is None and not drain.undrain()
    token = drain.drain("kernel upgrade")
    assert DrainState(tmp_path).current()["token"] == token  # a new reader (feed restart) sees it
    assert drain.drain() != token  # each drain gets its own confirmation token
    assert drain.undrain() and drain.current() is None


def test_corrupt_drain_file_still_means_drained(tmp_path: Path) -> None:
    (tmp_path / "bgp-drain.json").write_text("{not json")
    assert DrainState(tmp_path).current() is not None


def test_drain_wait_fails_without_a_confirming_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    # A stale status from an older drain (other token) must not count as confirmation.
    FeedStatus(tmp_path).write({"pid": os.getpid(), "drain_token": "old", "announced": [], "confirmed": True})
    assert main(["drain", "--wait", "0.3"]) == 1
    assert "no feed confirmed" in capsys.readouterr().err
    assert DrainState(tmp_path).current() is not None  # the flag stays set for the feed to honour
    assert main(["undrain"]) == 0 and DrainState(tmp_path).current() is None
    with pytest.raises(SystemExit) as bad:
        main(["drain", "--wait", "-1"])
    assert bad.value.code == 2
