"""Attach a two-line XDP_PASS program to an interface of the current netns, then exit.

The attachment outlives this process (the netdev holds the program), which is exactly
what a director's data plane looks like to the readiness check. Run it with
``ip netns exec NS python xdp_passer.py IFACE``; detach with ``ip link set IFACE xdp off``.
"""

import sys

from bcc import BPF

PROGRAM = "int glb_test_passer(struct xdp_md *ctx) { return XDP_PASS; }"

if __name__ == "__main__":
    bpf = BPF(text=PROGRAM)
    bpf.attach_xdp(sys.argv[1], bpf.load_func("glb_test_passer", BPF.XDP), BPF.XDP_FLAGS_DRV_MODE)
