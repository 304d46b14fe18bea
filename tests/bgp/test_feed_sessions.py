"""The feed sends each prefix only to the sessions of its own IP version, and counts a
prefix as announced only when every one of its sessions acknowledged it.

ExaBGP's side of the pipe is played by a thread answering ``done``/``error`` per line, as
ExaBGP's API does; the namespace tests (test_bgp_lab.py) run the same feed against the real
ExaBGP. Here the point is the per-session fan-out and the ack bookkeeping, including an
``error`` on one of two sessions, which the real daemon cannot be made to produce on demand.
"""

from __future__ import annotations

import io
import ipaddress
import os
import threading
from pathlib import Path

from glb_agent.bgp.api import ExaBgpPipe
from glb_agent.bgp.events import EventLog
from glb_agent.bgp.feed import Feed, FeedSettings
from glb_agent.bgp.state import DrainState, FeedStatus

V4 = ipaddress.ip_network("203.0.113.10/32")
V6 = ipaddress.ip_network("2001:db8:100::10/128")


class Responder:
    """Reads command lines from the feed, records them, answers one ack per line."""

    def __init__(self, refuse: str = "") -> None:
        r_cmd, w_cmd = os.pipe()
        r_ack, w_ack = os.pipe()
        self.to_feed = os.fdopen(w_cmd, "w")
        self.from_feed = os.fdopen(r_cmd)
        self.acks_out = os.fdopen(w_ack, "w")
        self.acks_in = os.fdopen(r_ack)
        self.refuse = refuse
        self.lines: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        for line in self.from_feed:
            self.lines.append(line.strip())
            refused = self.refuse and line.startswith(self.refuse) and " announce " in line
            self.acks_out.write("error\n" if refused else "done\n")
            self.acks_out.flush()

    def pipe(self) -> ExaBgpPipe:
        return ExaBgpPipe(self.to_feed, self.acks_in, ack_timeout=2.0)


def make_feed(tmp_path: Path, responder: Responder, ready: bool = True) -> Feed:
    return Feed(director="d1", prefixes=[V4, V6], ready=lambda: (ready, "test"), pipe=responder.pipe(),
                drain=DrainState(tmp_path), status=FeedStatus(tmp_path), log=EventLog("d1", io.StringIO()),
                neighbors={4: ["198.18.0.1", "198.18.1.1"], 6: ["2001:db8:18::1"]},
                settings=FeedSettings(interval=0.01, rise=1))


def test_each_prefix_goes_to_the_sessions_of_its_family(tmp_path: Path) -> None:
    responder = Responder()
    feed = make_feed(tmp_path, responder)
    feed.step()
    assert responder.lines == [
        "neighbor 198.18.0.1 announce route 203.0.113.10/32 next-hop self",
        "neighbor 198.18.1.1 announce route 203.0.113.10/32 next-hop self",
        "neighbor 2001:db8:18::1 announce route 2001:db8:100::10/128 next-hop self",
    ]
    assert feed.announced == {V4, V6}
    responder.lines.clear()
    DrainState(tmp_path).drain()
    feed.step()
    assert responder.lines == [
        "neighbor 198.18.0.1 withdraw route 203.0.113.10/32 next-hop self",
        "neighbor 198.18.1.1 withdraw route 203.0.113.10/32 next-hop self",
        "neighbor 2001:db8:18::1 withdraw route 2001:db8:100::10/128 next-hop self",
    ]
    assert feed.announced == set()
    assert FeedStatus(tmp_path).read()["announced"] == []


def test_a_refusal_on_one_session_leaves_the_prefix_unannounced(tmp_path: Path) -> None:
    responder = Responder(refuse="neighbor 198.18.1.1 ")
    feed = make_feed(tmp_path, responder)
    feed.step()
    # The IPv6 prefix is unaffected; the IPv4 one is retried later, not counted as announced.
    assert feed.announced == {V6}
    assert V4 in feed._retry_at
