"""Build the one C extension (the forwarding-table builder's hot loop); metadata is in pyproject.

-O3 lets GCC vectorise the per-backend SipHash loop. No -march flag here: the C file asks
for AVX2/AVX-512 clones itself (target_clones), so the wheel still runs on any x86-64.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "glb_agent.table._rendezvous",
            sources=["glb_agent/table/_rendezvous.c"],
            # glb_siphash.h: the SipHash the director programs use (bpf/include, shipped
            # as package data through the glb_agent/bpf link).
            include_dirs=["glb_agent/bpf/include"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"],
        )
    ]
)
