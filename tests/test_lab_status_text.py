"""`glb-agent lab status` text: what an operator reads to see routes, announcements and BFD."""

from glb_agent.commands.lab import _status_text


def _doc(bfd: dict[str, str] | None, router_bfd: dict[str, str] | None) -> dict:
    doc = {"namespaces": ["glb-lab-d1"], "routes": {"203.0.113.10": ["198.18.0.11"]},
           "directors": {"d1": {"bgp": {"announced": ["203.0.113.10/32"]}, "bfd": bfd}}}
    if router_bfd is not None:
        doc["router_bfd"] = router_bfd
    return doc


def test_bfd_sessions_of_directors_and_router_are_listed() -> None:
    text = _status_text(_doc({"198.18.0.1": "Up"}, {"198.18.0.12": "Down", "198.18.0.11": "Up"}))
    assert "director d1: BFD 198.18.0.1 Up" in text.splitlines()
    assert "router BFD 198.18.0.11 Up, 198.18.0.12 Down" in text.splitlines()


def test_no_bfd_line_when_the_speaker_is_not_running() -> None:
    text = _status_text(_doc(None, None))
    assert "BFD" not in text
    assert "director d1 (xdp): announced 203.0.113.10/32" in text


def test_the_data_plane_each_director_runs_is_shown() -> None:
    doc = _doc(None, None)
    doc["directors"]["d1"]["agent"] = {"dataplane": "dpdk"}
    assert "director d1 (dpdk): announced 203.0.113.10/32" in _status_text(doc).splitlines()


def test_a_speaker_without_sessions_says_so() -> None:
    assert "director d1: BFD no sessions" in _status_text(_doc({}, None)).splitlines()
