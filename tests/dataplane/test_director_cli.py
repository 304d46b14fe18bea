"""``glb-agent director start|status|stop`` end to end, in the lab's director namespace.

The CLI runs in-process on a thread switched into the director namespace (``ip netns
exec`` would hide bpffs behind a fresh /sys). The gateway MAC comes from ARP for the
configured next hop, the tables from the real builder; the proxy must receive each flow
at the backend pair the config's table predicts.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from pathlib import Path

import pytest

from glb_agent.cli import main
from glb_agent.config import load_config
from glb_agent.config.tables import table_specs
from glb_agent.table.rendezvous import build_rows
from glb_agent.table.siphash import siphash24_int
from tests.dataplane.netlab import CLIENT_IP, PROXY_IPS, VIP, GueSink, inner_udp, netns, parse_gue

pytestmark = [pytest.mark.bpf, pytest.mark.netns]

CONFIG = f"""
fleet:
  name: dlab
  secret: director-cli-test-secret
  hash_fields: [src_addr, src_port]
bgp:
  local_asn: 65100
  peers:
    - {{name: r1, address: 198.18.1.254, asn: 65000}}
directors:
  - name: d1
    address: 198.18.1.1
    interface: eth0
    next_hop: {PROXY_IPS[0]}
proxies:
  - {{name: p1, address: {PROXY_IPS[0]}, interface: eth0}}
  - {{name: p2, address: {PROXY_IPS[1]}, interface: eth0}}
services:
  - name: dns
    vips: [{VIP}]
    protocol: udp
    ports: [53]
    backends:
      - address: {PROXY_IPS[0]}
      - address: {PROXY_IPS[1]}
"""


def test_start_status_restart_stop(net, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "glb.yml"
    cfg.write_text(CONFIG)
    pin = Path(f"/sys/fs/bpf/glbt-{secrets.token_hex(3)}/eth0")
    common = ["--pin-dir", str(pin), "--json"]
    sink = GueSink(net.proxy).start()
    try:
        with netns(net.director):
            assert main(["director", "status", str(cfg), *common]) == 1
            capsys.readouterr()
            assert main(["director", "start", str(cfg), *common]) == 0
            started = json.loads(capsys.readouterr().out)
            assert started["outcome"] == "attached-native" and started["services"] == ["dns"]
        spec = table_specs(load_config(cfg))[0]
        rows = build_rows(spec)
        socks = [net.client_socket(p) for p in range(44000, 44010)]
        for s in socks:
            s.sendto(b"cli", (VIP, 53))
        # Frames reach the proxy's socket only if the gateway MAC learnt by ARP is its own.
        got = sink.wait_for(len(socks))
        assert len(got) == len(socks)
        for r in got:
            _proto, secondary, inner = parse_gue(r.payload)
            client, sport, _dport, _ = inner_udp(inner)
            assert client == CLIENT_IP
            h = siphash24_int(spec.hash_key, ipaddress.ip_address(client).packed + sport.to_bytes(2, "big"))
            p, s2 = rows[h & 0xFFFF]
            assert (r.primary, secondary) == (str(spec.backends[p].ip), str(spec.backends[s2].ip))
        with netns(net.director):
            assert main(["director", "status", str(cfg), *common]) == 0
            status = json.loads(capsys.readouterr().out)
            assert status["counters"]["dns"]["forwarded_packets"] == len(socks)
            assert status["mode"] == "native"
            # A second start (agent restart, same config) adopts: nothing is re-attached.
            assert main(["director", "start", str(cfg), *common]) == 0
            assert json.loads(capsys.readouterr().out)["outcome"] == "adopted"
            assert main(["director", "stop", str(cfg), *common]) == 0
            assert json.loads(capsys.readouterr().out)["stopped"] is True
            assert main(["director", "status", str(cfg), *common]) == 1
        assert not pin.exists()
        for s in socks:
            s.close()
    finally:
        sink.close()
        with netns(net.director):
            main(["director", "stop", str(cfg), "--pin-dir", str(pin)])


def test_unknown_director_is_bad_input(net, tmp_path: Path) -> None:
    cfg = tmp_path / "glb.yml"
    cfg.write_text(CONFIG)
    assert main(["director", "start", str(cfg), "--name", "nope"]) == 2
    # In the client namespace no director address is local: refuse to guess.
    with netns(net.client):
        assert main(["director", "start", str(cfg)]) == 2
