"""The GUE tunnel probe: an ICMP echo carried through the backend's own GUE decapsulation.

A TCP or HTTP check proves the proxy's service answers; it does not prove that the proxy
decapsulates what the director sends. This probe sends exactly what the director's data
plane sends -- outer IPv4 (DF, TTL 64) | UDP to the GUE port, checksum 0 | GUE base
header | GLB private data | inner IPv4 -- with an inner ICMP echo request from the
director's address to the backend (or a VIP the backend serves). The proxy's eBPF decap
strips the outer headers, the proxy kernel answers the echo directly (direct server
return, like real traffic), and the reply arrives here as a plain ICMP echo reply matched
by ICMP id and sequence number. Layout: ``bpf/include/glb_gue.h``; the one difference from
a data-plane packet is ``hop_count = 0``: no secondary is listed, so a proxy that cannot
deliver the echo locally drops it instead of forwarding it and faking success.

One raw socket (IPPROTO_RAW, the header is ours) sends every probe and one raw ICMP socket
receives every reply, registered with the event loop: hundreds of concurrent probes cost
two file descriptors. The UDP source port encodes the sequence number, so an ICMP
"port unreachable" (no decap listening, e.g. plain kernel without the program) fails the
probe at once instead of after the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from glb_agent.health.probes import ProbeResult

GUE_PROTO_IPV4 = 4
IPV4_TTL = 64
IP_DF = 0x4000
ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_ECHO_REQUEST = 0, 3, 8
RECV_BUFFER = 4 << 20  # bytes of queued ICMP replies (see open())
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python's socket module does not export it
SPORT_BASE = 0xC000  # UDP source ports 49152-65535 carry the low 14 bits of the sequence
_PAYLOAD_MAGIC = b"glb-hc"


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_header(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, proto: int,
                payload_len: int, ident: int) -> bytes:
    """A 20-byte IPv4 header with DF set, TTL 64 and a valid checksum."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident & 0xFFFF, IP_DF, IPV4_TTL,
                      proto, 0, src.packed, dst.packed)
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]


def icmp_echo(ident: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq) + payload
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def gue_header() -> bytes:
    """GUE base (version 0, C 0, Hlen 1, proto IPv4, flags 0) + GLB private data, 0 hops.

    Hlen counts the private data in 32-bit words: the one {type, next_hop, hop_count} word.
    """
    hlen = 1
    return struct.pack("!BBH", hlen & 0x1F, GUE_PROTO_IPV4, 0) + struct.pack("!HBB", 0, 0, 0)


def probe_packet(source: ipaddress.IPv4Address, backend: ipaddress.IPv4Address,
                 inner_dst: ipaddress.IPv4Address, gue_port: int, ident: int, seq: int) -> bytes:
    """The complete outer IPv4 packet of one probe (what goes on the wire)."""
    payload = _PAYLOAD_MAGIC + struct.pack("!d", time.time())
    inner_icmp = icmp_echo(ident, seq, payload)
    inner = ipv4_header(source, inner_dst, socket.IPPROTO_ICMP, len(inner_icmp), seq) + inner_icmp
    gue = gue_header() + inner
    udp = struct.pack("!HHHH", SPORT_BASE | (seq & 0x3FFF), gue_port, 8 + len(gue), 0)  # checksum 0
    return ipv4_header(source, backend, socket.IPPROTO_UDP, len(udp) + len(gue), seq) + udp + gue


@dataclass(frozen=True)
class IcmpMessage:
    """What the receive path needs from one ICMP packet."""

    src: ipaddress.IPv4Address
    type: int
    ident: int = 0
    seq: int = 0
    # for errors: the destination and UDP source port of the packet that caused it
    orig_dst: ipaddress.IPv4Address | None = None
    orig_sport: int = 0


def parse_icmp(packet: bytes) -> IcmpMessage | None:
    """Parse an IPv4+ICMP packet as read from a raw ICMP socket; None if irrelevant."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_ICMP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    src = ipaddress.IPv4Address(packet[12:16])
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    kind = icmp[0]
    if kind == ICMP_ECHO_REPLY:
        ident, seq = struct.unpack("!HH", icmp[4:8])
        return IcmpMessage(src, kind, ident, seq)
    if kind == ICMP_DEST_UNREACH and len(icmp) >= 8 + 20 + 4:
        orig = icmp[8:]
        o_ihl = (orig[0] & 0x0F) * 4
        if orig[9] != socket.IPPROTO_UDP or len(orig) < o_ihl + 4:
            return None
        (sport,) = struct.unpack("!H", orig[o_ihl:o_ihl + 2])
        return IcmpMessage(src, kind, orig_dst=ipaddress.IPv4Address(orig[16:20]), orig_sport=sport)
    return None


class GueProber:
    """Sends GUE probes and matches replies; one instance serves every backend of a checker."""

    def __init__(self, ident: int | None = None) -> None:
        self.ident = secrets.randbelow(0x10000) if ident is None else ident
        self._seq = secrets.randbelow(0x10000)
        # seq -> (called with None on the echo reply or the reason on an ICMP error, inner dst)
        self._pending: dict[int, tuple[Callable[[str | None], None], ipaddress.IPv4Address]] = {}
        # seq -> (outer destination, UDP source port), to map ICMP errors back to a probe
        self._targets: dict[int, tuple[ipaddress.IPv4Address, int]] = {}
        self._send: socket.socket | None = None
        self._recv: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        """Open the sockets in the current network namespace (needs CAP_NET_RAW)."""
        if self._send is not None:
            return
        self._loop = asyncio.get_running_loop()
        send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        recv = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        send.setblocking(False)
        recv.setblocking(False)
        # Thousands of replies a second: a loop that stalls for a few hundred ms (a busy host)
        # must find them queued, not dropped by a full 208 KiB default buffer.
        try:
            recv.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER)
        except OSError:  # no CAP_NET_ADMIN: as much as net.core.rmem_max allows
            recv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        self._send, self._recv = send, recv
        self._loop.add_reader(recv.fileno(), self.drain)

    def close(self) -> None:
        if self._recv is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._recv.fileno())
        for sock in (self._send, self._recv):
            if sock is not None:
                sock.close()
        self._send = self._recv = None
        self._pending.clear()  # nobody is called back: the probes' owners drop them too
        self._targets.clear()

    def _next_seq(self) -> int:
        for _ in range(0x10000):
            self._seq = (self._seq + 1) & 0xFFFF
            if self._seq not in self._pending:
                return self._seq
        raise RuntimeError("65536 GUE probes outstanding")

    def drain(self) -> None:
        """Handle every queued ICMP message (the loop calls this when the socket is readable;
        the probe engine also calls it before deciding that any echo timed out)."""
        if self._recv is None:
            return
        for _ in range(4096):  # drain what is queued, but never starve the loop
            try:
                data = self._recv.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            msg = parse_icmp(data)
            if msg is None:
                continue
            if msg.type == ICMP_ECHO_REPLY and msg.ident == self.ident:
                entry = self._pending.get(msg.seq)
                if entry and entry[1] == msg.src:
                    self.forget(msg.seq)
                    entry[0](None)
            elif msg.type == ICMP_DEST_UNREACH:
                for seq, want in list(self._targets.items()):
                    if want == (msg.orig_dst, msg.orig_sport) and seq in self._pending:
                        done = self._pending[seq][0]
                        self.forget(seq)
                        done(f"ICMP unreachable from {msg.src}: nothing decapsulates GUE")

    def send(self, source: ipaddress.IPv4Address, backend: ipaddress.IPv4Address, gue_port: int,
             inner_dst: ipaddress.IPv4Address | None, done: Callable[[str | None], None]) -> int:
        """Send one GUE echo through ``backend``; returns its sequence number.

        ``done(None)`` runs on the matching echo reply, ``done(reason)`` on an ICMP error for
        it; a failed send raises OSError. Nothing here times out: the caller owns the deadline
        and calls ``forget(seq)`` when it gives up (the probe engine keeps every deadline of a
        checker in one heap, so a probe costs no task or timer of its own).
        """
        if self._send is None:
            self.open()
        assert self._send is not None
        inner = inner_dst or backend
        seq = self._next_seq()
        packet = probe_packet(source, backend, inner, gue_port, self.ident, seq)
        self._send.sendto(packet, (str(backend), 0))
        self._pending[seq] = (done, inner)
        self._targets[seq] = (backend, SPORT_BASE | (seq & 0x3FFF))
        return seq

    def forget(self, seq: int) -> None:
        self._pending.pop(seq, None)
        self._targets.pop(seq, None)

    async def probe(self, source: ipaddress.IPv4Address, backend: ipaddress.IPv4Address,
                    gue_port: int, timeout: float,
                    inner_dst: ipaddress.IPv4Address | None = None) -> ProbeResult:
        """One GUE echo through ``backend`` on its own (``send`` with a future and a timeout)."""
        if self._send is None:
            self.open()
        assert self._loop is not None
        fut: asyncio.Future[str | None] = self._loop.create_future()
        start = time.monotonic()
        where = describe(source, backend, gue_port, inner_dst)
        seq = None
        try:
            seq = self.send(source, backend, gue_port, inner_dst,
                            lambda why: fut.done() or fut.set_result(why))
            async with asyncio.timeout(timeout):
                why = await fut
        except TimeoutError:
            why = "timeout"
        except OSError as exc:
            why = exc.strerror.lower() if exc.strerror else str(exc)
        finally:
            if seq is not None:
                self.forget(seq)
        return ProbeResult("gue", why is None, f"{where}: {why or 'echo reply'}", time.monotonic() - start)


def describe(source: ipaddress.IPv4Address, backend: ipaddress.IPv4Address, gue_port: int,
             inner_dst: ipaddress.IPv4Address | None) -> str:
    """How a GUE probe is named in results and logs."""
    return f"gue {source}->{backend}:{gue_port} echo {inner_dst or backend}"


def can_probe() -> str | None:
    """Why GUE probes cannot run here, or None (raw sockets need CAP_NET_RAW)."""
    if os.geteuid() != 0:
        return "raw sockets need root (CAP_NET_RAW)"
    return None
