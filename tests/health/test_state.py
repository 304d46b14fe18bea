"""The rise/fall/damping rules and the state file, driven by synthetic clocks."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from glb_agent.health import persist
from glb_agent.health.state import BackendState, Damping

D = Damping(window=60.0, changes=4, factor=5)


def feed(st: BackendState, results: str, t0: float = 0.0, step: float = 1.0) -> list[int]:
    """Feed '+'/'-' results one per ``step``; returns the indexes where the verdict changed."""
    return [i for i, c in enumerate(results) if st.observe(c == "+", t0 + i * step, D, "x")]


def test_fall_needs_consecutive_failures() -> None:
    st = BackendState(rise=2, fall=3)
    assert feed(st, "--+--+") == []  # never three in a row
    assert st.healthy
    assert feed(st, "---", t0=10) == [2]
    assert not st.healthy and st.since == 12


def test_rise_needs_consecutive_successes() -> None:
    st = BackendState(rise=2, fall=1, healthy=False)
    assert feed(st, "+-+-") == []
    assert feed(st, "++", t0=10) == [1]
    assert st.healthy


def test_flapping_backend_needs_rise_times_factor_to_come_back() -> None:
    st = BackendState(rise=2, fall=1)
    # down, up, down, up: four changes within the window -> damped from now on
    assert feed(st, "-++-++") == [0, 2, 3, 5]
    assert feed(st, "-", t0=6) == [0]
    assert st.damped(7, D)
    # a normal backend would be back after 2 successes; this one needs 2 * 5 = 10
    assert feed(st, "+" * 9, t0=7) == []
    assert not st.healthy
    assert feed(st, "+", t0=16) == [0]


def test_damping_expires_with_the_window() -> None:
    st = BackendState(rise=2, fall=1)
    feed(st, "-++-++-")  # five changes at t=0..6
    assert st.damped(6.5, D)
    # 61 s later the old changes are out of the window: back to rise=2
    assert not st.damped(66.5, D)
    assert feed(st, "++", t0=70) == [1]


def test_going_down_is_never_delayed_by_damping() -> None:
    st = BackendState(rise=1, fall=2)
    feed(st, "--+--+")
    assert st.damped(6, D)
    assert feed(st, "--", t0=6) == [1]


def test_state_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    key = ("web", ipaddress.IPv4Address("198.18.0.21"))
    entries = {key: persist.Saved(False, 1000.5, (990.0, 1000.5), "refused")}
    path = tmp_path / "state" / "health.json"
    persist.save(path, entries)
    assert persist.load(path) == entries
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["backends"][0]["address"] == "198.18.0.21"
    assert not list(path.parent.glob(".health.json.*")), "temp file left behind"
    path.write_text("{not json")
    assert persist.load(path) == {}
    path.write_text(json.dumps({"version": 99, "backends": []}))
    assert persist.load(path) == {}
    path.write_text(json.dumps({"version": 1, "backends": [{"service": "web", "address": "x",
                                                            "healthy": True}]}))
    assert persist.load(path) == {}
    path.write_text(json.dumps({"version": 1, "backends": [{"service": "web", "address": "198.18.0.1",
                                                            "healthy": "yes"}]}))
    assert persist.load(path) == {}
    assert persist.load(tmp_path / "missing.json") == {}
