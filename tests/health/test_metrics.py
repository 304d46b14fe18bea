"""The exporter, scraped over HTTP: values come from the providers at scrape time."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from glb_agent.metrics import (
    BgpState,
    Exporter,
    GlbCollector,
    TableBuild,
    bgp_from_status_file,
    counters_from_director,
    counters_from_mapping,
)

A, B = ipaddress.IPv4Address("198.18.0.21"), ipaddress.IPv4Address("198.18.0.22")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_scrape_reads_every_provider_at_scrape_time(tmp_path: Path) -> None:
    raw = {("web", "forwarded"): (10, 1500), ("web", "drop_too_big"): (2, 3000),
           ("web", "drop_malformed"): (1, 60), ("", "pass_not_vip"): (7, 700)}
    health = {("web", A): True, ("web", B): False}
    status = tmp_path / "bgp-feed.json"
    status.write_text(json.dumps({"announced": ["203.0.113.10/32"], "ready": True, "updated": time.time()}))
    drain = tmp_path / "bgp-drain.json"
    collector = GlbCollector(
        counters=lambda: counters_from_mapping(raw),
        health=lambda: health,
        tables=lambda: [TableBuild("web", 0.042, swapped_at=1_700_000_000.0, rows_at_risk=12,
                                   first_share={str(A): 0.25, str(B): 0.75})],
        bgp=bgp_from_status_file(status, ["203.0.113.10/32", "203.0.113.11/32"], drain_file=drain),
    )
    with Exporter(collector, port=0) as exp:
        m = scrape(exp.port)
        assert m[("glb_director_packets_total", (("action", "forward"), ("service", "web")))] == 10
        assert m[("glb_director_bytes_total", (("action", "forward"), ("service", "web")))] == 1500
        assert m[("glb_director_packets_total", (("action", "drop"), ("service", "web")))] == 3
        assert m[("glb_director_bytes_total", (("action", "drop"), ("service", "web")))] == 3060
        assert m[("glb_director_packets_total", (("action", "pass"), ("service", "")))] == 7
        assert m[("glb_director_drops_total", (("reason", "too_big"), ("service", "web")))] == 2
        assert m[("glb_director_drops_total", (("reason", "malformed"), ("service", "web")))] == 1
        assert m[("glb_backend_healthy", (("backend", str(A)), ("service", "web")))] == 1
        assert m[("glb_backend_healthy", (("backend", str(B)), ("service", "web")))] == 0
        assert m[("glb_table_generation_seconds", (("service", "web"),))] == pytest.approx(0.042)
        assert m[("glb_table_rows_at_risk", (("service", "web"),))] == 12
        assert m[("glb_backend_first_share", (("backend", str(B)), ("service", "web")))] == 0.75
        assert m[("glb_bgp_prefix_announced", (("prefix", "203.0.113.10/32"),))] == 1
        assert m[("glb_bgp_prefix_announced", (("prefix", "203.0.113.11/32"),))] == 0
        assert m[("glb_bgp_dataplane_ready", ())] == 1
        assert m[("glb_bgp_drained", ())] == 0
        assert 0 <= m[("glb_bgp_status_age_seconds", ())] < 60
        for provider in ("counters", "health", "tables", "bgp"):
            assert m[("glb_exporter_provider_up", (("provider", provider),))] == 1
        # live: the next scrape sees new values without anyone pushing them
        raw[("web", "forwarded")] = (11, 1600)
        health[("web", B)] = True
        drain.write_text("{}")
        m = scrape(exp.port)
        assert m[("glb_director_packets_total", (("action", "forward"), ("service", "web")))] == 11
        assert m[("glb_backend_healthy", (("backend", str(B)), ("service", "web")))] == 1
        assert m[("glb_bgp_drained", ())] == 1


def test_a_failing_provider_is_reported_not_fatal() -> None:
    def broken() -> list:
        raise RuntimeError("director program not loaded")

    collector = GlbCollector(counters=broken, health=lambda: {("web", A): True},
                             bgp=lambda: BgpState({"203.0.113.10/32": False}))
    with Exporter(collector, port=0) as exp:
        m = scrape(exp.port)
    assert m[("glb_exporter_provider_up", (("provider", "counters"),))] == 0
    assert m[("glb_exporter_provider_up", (("provider", "health"),))] == 1
    assert m[("glb_backend_healthy", (("backend", str(A)), ("service", "web")))] == 1
    assert m[("glb_bgp_prefix_announced", (("prefix", "203.0.113.10/32"),))] == 0
    assert not any(name.startswith("glb_director_") for name, _ in m)
    assert ("glb_exporter_provider_up", (("provider", "tables"),)) not in m


def test_exporter_binds_loopback_by_default() -> None:
    exp = Exporter(GlbCollector(), port=0)
    assert exp.address == "127.0.0.1"
    with exp:
        host = exp._server.server_address[0]  # type: ignore[attr-defined]
    assert host == "127.0.0.1"


def test_director_counters_shape_is_adapted() -> None:
    raw = {"web": {"forwarded_packets": 5, "forwarded_bytes": 500, "drop_too_big_packets": 1,
                   "drop_too_big_bytes": 9000},
           "_unmatched": {"pass_not_vip_packets": 3, "pass_not_vip_bytes": 180}}
    got = {(c.service, c.reason, c.action): (c.packets, c.bytes) for c in counters_from_director(raw)}
    assert got == {("web", "forwarded", "forward"): (5, 500), ("web", "drop_too_big", "drop"): (1, 9000),
                   ("", "pass_not_vip", "pass"): (3, 180)}
