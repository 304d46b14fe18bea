"""glb_agent/dataplane/reasons.py: counter names come from bpf/include/glb_reasons.h, and a
header edit that would shift indices is refused instead of mislabelling counters."""

from __future__ import annotations

import pytest

from glb_agent.dataplane import director_maps, proxy, reasons
from glb_agent.errors import GlbError


def test_director_reasons_in_index_order() -> None:
    assert reasons.director_reasons() == (
        "forwarded", "pass_not_vip", "pass_icmp", "drop_malformed", "drop_fragment",
        "drop_no_backend", "drop_too_big", "drop_encap")
    assert reasons.director_reasons() == director_maps.REASONS


def test_proxy_counters_in_index_order() -> None:
    names = reasons.proxy_counters()
    assert names[0] == "rx_gue" and names[-1] == "drop_decap" and len(names) == len(set(names)) == 28
    assert proxy.counter_names() == names


GOOD = """enum t { T_A = 0,   /* a, b */
    T_B, // c
    T_MAX, };"""


def test_parser_reads_names_and_skips_comments() -> None:
    assert reasons.enum_names("t", "T_", "T_MAX", GOOD) == ("a", "b")


@pytest.mark.parametrize("text", [
    "enum t { T_A = 0, T_B = 5, T_MAX };",   # an explicit value would shift the indices
    "enum t { T_A, T_B, T_MAX };",           # the first must say = 0
    "enum t { T_A = 0, T_B };",              # the count is missing
    "enum t { T_A = 0, U_B, T_MAX };",       # another prefix
    "enum u { T_A = 0, T_MAX };",            # not there at all
])
def test_parser_refuses_headers_that_break_the_rules(text: str) -> None:
    with pytest.raises(GlbError):
        reasons.enum_names("t", "T_", "T_MAX", text)
