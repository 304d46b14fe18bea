"""bpf/include/glb_siphash.h compiled as plain userspace C, against the Python reference.

The header is shared by the XDP director, the table builder's C extension and the DPDK
director, so it must build warning-free with a userspace compiler (no bcc or kernel
constructs) and compute exactly SipHash-2-4: the published vectors, every message length,
and the director's 16-bit fast path from the expanded key.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from glb_agent.dataplane.director_maps import INCLUDE_DIR, sip_prefix
from glb_agent.table.siphash import siphash24_int

KEY = bytes(range(16))
MSG = bytes(range(64))
# The director's message lengths: IPv4/IPv6 addresses (1 or 2) plus 0-2 ports.
LO16_LENGTHS = (4, 6, 8, 10, 12, 16, 18, 20, 32, 34, 36)

PROGRAM = r"""
#include "glb_siphash.h"
#include <stdio.h>
#include <string.h>

int main(void)
{
	unsigned char key[16], msg[64];
	static const int lo16_len[] = {%(lengths)s};
	glb_u64 k0, k1;
	struct glb_sip expanded;
	size_t n;

	for (n = 0; n < 16; n++)
		key[n] = (unsigned char)n;
	for (n = 0; n < 64; n++)
		msg[n] = (unsigned char)n;
	k0 = glb_sip_load_le64(key);
	k1 = glb_sip_load_le64(key + 8);
	for (n = 0; n < 64; n++)
		printf("full %%zu %%016llx\n", n, (unsigned long long)glb_siphash24(k0, k1, msg, n));
	expanded = glb_sip_expand(k0, k1);
	for (n = 0; n < 4; n++)
		printf("expand %%zu %%016llx\n", n, (unsigned long long)expanded.v[n]);
	for (n = 0; n < sizeof(lo16_len) / sizeof(lo16_len[0]); n++) {
		glb_u64 w[5] = {0};
		unsigned char padded[40] = {0};

		memcpy(padded, msg, (size_t)lo16_len[n]);
		for (int i = 0; i < 5; i++)
			w[i] = glb_sip_load_le64(padded + 8 * i);
		/* The length must be a constant at the call site: one switch arm per length. */
		switch (lo16_len[n]) {
%(cases)s
		}
	}
	return 0;
}
"""


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    cases = "\n".join(f'\t\tcase {n}: printf("lo16 {n} %04x\\n", glb_siphash24_lo16(w, {n}, &expanded)); break;'
                      for n in LO16_LENGTHS)
    src = PROGRAM % {"lengths": ", ".join(map(str, LO16_LENGTHS)), "cases": cases}
    work: Path = tmp_path_factory.mktemp("siphash")
    (work / "t.c").write_text(src)
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{INCLUDE_DIR}",
                    "-o", str(work / "t"), str(work / "t.c")], check=True, capture_output=True, text=True)
    lines = subprocess.run([str(work / "t")], check=True, capture_output=True, text=True).stdout.splitlines()
    return {" ".join(line.split()[:2]): line.split()[2] for line in lines}


def test_published_vectors(output: dict[str, str]) -> None:
    # SipHash paper, appendix A: key 00..0f; the empty message and bytes 00..0e.
    assert output["full 0"] == "726fdb47dd0e0e31"
    assert output["full 15"] == "a129ca6149be45e5"


@pytest.mark.parametrize("n", range(64))
def test_every_length_matches_python(output: dict[str, str], n: int) -> None:
    assert int(output[f"full {n}"], 16) == siphash24_int(KEY, MSG[:n])


def test_expanded_key_is_what_the_agent_writes(output: dict[str, str]) -> None:
    assert tuple(int(output[f"expand {i}"], 16) for i in range(4)) == sip_prefix(KEY)


@pytest.mark.parametrize("n", LO16_LENGTHS)
def test_director_fast_path_is_the_low_16_bits(output: dict[str, str], n: int) -> None:
    assert int(output[f"lo16 {n}"], 16) == siphash24_int(KEY, MSG[:n]) & 0xFFFF
