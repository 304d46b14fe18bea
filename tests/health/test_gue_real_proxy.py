"""The GUE probe through the real proxy data plane (bpf/proxy.c via glb_agent.proxy.host).

Skipped, with the reason, where bcc or the proxy data plane is not available; the
decapsulator-based tests in test_gue.py cover the probe on their own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from pathlib import Path

import pytest

from glb_agent.config.model import GueCheck, HealthCheck
from glb_agent.health import Checker, GueProber, Target
from tests.health.conftest import DIRECTOR, PORT, PROXY, VIP
from tests.health.nsthread import run_in_netns
from tests.support.netns import bpf_unavailable

pytestmark = [pytest.mark.netns, pytest.mark.bpf]


@pytest.fixture
def real_proxy(gue_lab, tmp_path: Path):
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    from glb_agent.dataplane.proxy import ProxySettings
    from glb_agent.proxy.host import ProxyHost

    lab, d, p = gue_lab
    box: dict[str, object] = {}

    def apply() -> None:
        host = ProxyHost(ProxySettings(interface="eth0", address=PROXY, allowed_senders=(DIRECTOR,),
                                       vips=(VIP,), pin_dir=Path("/sys/fs/bpf") / f"glbt-hc-{lab.tag}"),
                         state_dir=tmp_path / "proxy-state")
        host.apply()
        box["host"] = host

    run_in_netns(p, apply)
    try:
        yield lab, d, p, box["host"]
    finally:
        run_in_netns(p, box["host"].stop)  # type: ignore[attr-defined]


def test_gue_probe_is_answered_through_the_proxy_ebpf(real_proxy) -> None:
    _lab, d, p, host = real_proxy

    async def probes() -> list:
        prober = GueProber()
        prober.open()
        try:
            out = []
            for inner, timeout in ((PROXY, 1.0), (VIP, 1.0), (ipaddress.IPv4Address("203.0.113.99"), 0.3)):
                out.append(await prober.probe(DIRECTOR, PROXY, PORT, timeout, inner))
            return out
        finally:
            prober.close()

    to_proxy, to_vip, unserved = run_in_netns(d, lambda: asyncio.run(probes()))
    assert to_proxy.ok, to_proxy
    assert to_vip.ok, to_vip
    assert not unserved.ok, unserved
    print(f"\nGUE echo through proxy eBPF: {to_proxy.seconds * 1000:.2f} ms (proxy), "
          f"{to_vip.seconds * 1000:.2f} ms (VIP)")

    # the checker sees the decap disappear when the program is removed
    target = Target("web", PROXY, HealthCheck(gue=GueCheck(port=PORT)), source=DIRECTOR)

    async def scenario() -> tuple[bool, float]:
        down = asyncio.Event()

        def on_change(view, changes) -> None:
            if not view[target.key]:
                down.set()

        async with Checker([target], on_change=on_change) as checker:
            await asyncio.sleep(0.8)
            assert checker.view()[target.key] and checker.stats.last_results[target.key][0].ok
            await asyncio.to_thread(run_in_netns, p, host.stop)
            removed = time.monotonic()
            async with asyncio.timeout(3):
                await down.wait()
            return checker.view()[target.key], time.monotonic() - removed

    healthy, delay = run_in_netns(d, lambda: asyncio.run(scenario()))
    print(f"proxy decap removed -> callback: {delay:.3f} s")
    assert not healthy and delay <= 3 * 0.3 + 0.25 + 0.5
