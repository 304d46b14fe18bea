"""A test-side GUE decapsulator standing in for the proxy's eBPF program.

Receives GUE on a UDP socket, checks the header strictly against bpf/include/glb_gue.h,
and writes the inner IPv4 packet into a TUN device, so the namespace's own kernel answers
the inner ICMP echo exactly as a proxy kernel would after the eBPF decap. One JSON line
per packet on stdout says what arrived (the test checks the wire format from it).

Usage (inside the proxy namespace): python -m tests.health.decap PORT
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import subprocess
import sys

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    for conf in ("all", "default", name):  # inner sources arrive on the tun, replies leave by eth0
        with open(f"/proc/sys/net/ipv4/conf/{conf}/rp_filter", "w") as fh:
            fh.write("0")
    return fd


def check(payload: bytes) -> tuple[dict, bytes | None]:
    """The header fields, and the inner packet if the header is one we decapsulate."""
    ver_c_hlen, proto, flags = struct.unpack("!BBH", payload[:4])
    ptype, next_hop, hop_count = struct.unpack("!HBB", payload[4:8])
    hlen = ver_c_hlen & 0x1F
    info = {"version": ver_c_hlen >> 6, "c": (ver_c_hlen >> 5) & 1, "hlen": hlen, "proto": proto,
            "flags": flags, "private_type": ptype, "next_hop": next_hop, "hop_count": hop_count}
    ok = (ver_c_hlen >> 6 == 0 and not (ver_c_hlen & 0x20) and proto == 4 and flags == 0 and ptype == 0
          and hlen == 1 + hop_count and hop_count == 0)  # hop_count > 0 would mean "forward": not here
    inner = payload[4 + 4 * hlen:]
    if ok and len(inner) >= 20:
        info.update(inner_src=socket.inet_ntoa(inner[12:16]), inner_dst=socket.inet_ntoa(inner[16:20]),
                    inner_proto=inner[9])
        return info, inner
    return info, None


def main(port: int) -> None:
    tun = open_tun("gue0")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print(json.dumps({"ready": True}), flush=True)
    while True:
        payload, (src, sport) = sock.recvfrom(65535)
        info, inner = check(payload)
        info.update(outer_src=src, sport=sport, delivered=inner is not None)
        print(json.dumps(info), flush=True)
        if inner is not None:
            os.write(tun, inner)


if __name__ == "__main__":
    main(int(sys.argv[1]))
