"""The director agent's BGP/BFD metrics, scraped over HTTP while a real ExaBGP feed (and its
BFD speaker) runs against a real BIRD router. Uses the agent's own provider wiring
(``DirectorAgent._bgp_provider``), so an unconnected provider fails here."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from glb_agent.agent.director import AgentOptions, DirectorAgent
from glb_agent.config.hosts import this_director
from glb_agent.metrics import Exporter, GlbCollector
from tests.bgp.bgplab import DIRECTOR_IPS, VIP, BgpLab
from tests.support.netns import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("glb_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_bgp_and_bfd_state_are_exported(bgplab: BgpLab) -> None:
    d1 = bgplab.directors["d1"]
    agent = DirectorAgent(AgentOptions(config=bgplab.config, name="d1", state_dir=d1.state_dir,
                                       metrics_port=None))
    port = _free_port()
    exporter = Exporter(GlbCollector(bgp=agent._bgp_provider(this_director(agent.loaded, "d1", strict=True))), port=port)
    exporter.start()
    try:
        want = {
            'glb_bgp_prefix_announced{prefix="203.0.113.10/32"}': 1.0,
            'glb_bgp_prefix_announced{prefix="2001:db8:100::10/128"}': 1.0,
            'glb_bgp_session_up{peer="r1"}': 1.0,
            'glb_bgp_session_up{peer="r1v6"}': 1.0,
            "glb_bgp_dataplane_ready": 1.0,
            "glb_bfd_running": 1.0,
            'glb_bfd_session_up{peer="r1"}': 1.0,
            'glb_bfd_session_state{peer="r1",state="Up"}': 1.0,
            'glb_exporter_provider_up{provider="bgp"}': 1.0,
        }
        wait_for(lambda: all(_scrape(port).get(k) == v for k, v in want.items()), 15,
                   what=f"metrics {want} (scraped {_scrape(port)})")
        # `glb-agent status` shows the same per-peer BFD and BGP session state.
        shown = json.loads(bgplab.agent("d1", "status", "--json", "--state-dir", str(d1.state_dir)).stdout)
        assert {x["address"]: x["state"] for x in shown["bfd"]} == {"198.18.0.1": "Up", "2001:db8:18::1": "Up"}
        assert shown["bgp"]["sessions"]["r1"]["state"] == "up"
        # Data plane gone: prefixes withdrawn, BFD speaker stopped, sessions reported down.
        bgplab.detach_xdp("d1")
        bgplab.wait_nexthops({DIRECTOR_IPS["d2"]}, prefix=VIP, timeout=5)
        gone = {
            'glb_bgp_prefix_announced{prefix="203.0.113.10/32"}': 0.0,
            "glb_bgp_dataplane_ready": 0.0,
            "glb_bfd_running": 0.0,
            'glb_bfd_session_up{peer="r1"}': 0.0,
        }
        wait_for(lambda: all(_scrape(port).get(k) == v for k, v in gone.items()), 10,
                   what=f"metrics {gone} (scraped {_scrape(port)})")
    finally:
        exporter.stop()
