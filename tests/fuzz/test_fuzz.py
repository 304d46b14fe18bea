"""The differential fuzzer's CI budget: a fixed seed, >= 50,000 packets per program.

Each program (the director in four builds: hash field sets, row widths and shapes, a
hash-field migration, one without IPv6, VLAN and ICMP code; the proxy, with frames received
on the forwarding interface or not) runs the generated frames under
BPF_PROG_TEST_RUN and must agree with its reference model on every verdict, every output
byte and every counter. The run must also have reached every outcome the generator is
meant to reach, so a generator that silently stopped producing, say, forwarded ICMP errors
fails here instead of passing on easy traffic. ``make fuzz`` runs the long budget.
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz.env import TARGETS, target
from tests.fuzz.harness import fuzz
from tests.support.netns import bpf_unavailable

pytestmark = [pytest.mark.bpf, pytest.mark.netns, pytest.mark.slow]

CI_SEED = int(os.environ.get("FUZZ_CI_SEED", "20261202"))
CI_COUNT = max(50_000, int(os.environ.get("FUZZ_CI_COUNT", "50000")))

DIRECTOR_REASONS = {"forwarded", "pass_not_vip", "pass_icmp", "drop_malformed", "drop_fragment",
                    "drop_no_backend", "drop_too_big"}  # drop_encap: test runs always have headroom
PROXY_REASONS = {
    "accept_syn", "accept_established", "accept_ptb_known", "accept_last_resort", "accept_self_hop",
    "accept_udp", "accept_icmp", "accept_fragment", "forwarded_tx", "drop_sender", "drop_sender_role",
    "drop_outer", "drop_gue_version", "drop_gue_proto", "drop_gue_length", "drop_gue_private",
    "drop_gue_next_hop", "drop_inner", "drop_inner_dst", "drop_inner_proto", "drop_fwd_fib",
}  # request/time-wait/syncookie sockets and decap failures are tests/proxy's job


@pytest.mark.parametrize("name", TARGETS)
def test_programs_agree_with_models(name: str) -> None:
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    with target(name) as t:
        res = fuzz(t, CI_SEED, CI_COUNT)
    print(res.summary())
    assert res.mismatch_count == 0, "\n".join(m.report() for m in res.mismatches)
    assert res.packets == CI_COUNT
    reached = {o.split(" ", 1)[1].rsplit("/", 1)[-1] for o in res.outcomes}
    want = PROXY_REASONS if name.startswith("proxy") else DIRECTOR_REASONS
    if name == "proxy-redirect":  # received on lo: the same forwards leave through px0
        want = want - {"forwarded_tx"} | {"forwarded_redirect"}
    if name == "director-v4":
        want = want - {"pass_icmp"}  # built without ICMP handling: ICMP is not a VIP's business
    assert want <= reached, f"never reached: {sorted(want - reached)}"
    assert set(t.gen.CATEGORIES) <= set(res.categories)  # type: ignore[attr-defined]
