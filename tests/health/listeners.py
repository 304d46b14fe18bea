"""A process holding many real TCP listeners (one per loopback address) for the load test.

Usage: python -m tests.health.listeners FIRST_ADDRESS COUNT PORT
Prints "ready" once every socket listens; then reads commands on stdin:
"close I J ..." closes those listeners (prints "closed"), EOF exits.

Accepts with bare sockets and one selector (accept, close): at ten probes a second per
backend the listeners must cost far less than the checker they serve, or the test would
measure them.
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import sys


def main(first: str, count: int, port: int) -> None:
    base = ipaddress.IPv4Address(first)
    sel = selectors.DefaultSelector()
    listeners = []
    for i in range(count):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((str(base + i), port))
        srv.listen(256)
        srv.setblocking(False)
        sel.register(srv, selectors.EVENT_READ)
        listeners.append(srv)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:
                line = os.read(sys.stdin.fileno(), 65536).decode()
                if not line:
                    return
                words = line.split()
                if words and words[0] == "close":
                    for i in map(int, words[1:]):
                        sel.unregister(listeners[i])
                        listeners[i].close()
                    print("closed", flush=True)
                continue
            srv = key.fileobj
            assert isinstance(srv, socket.socket)
            while True:
                try:
                    conn, _ = srv.accept()
                except (BlockingIOError, ConnectionError):
                    break
                conn.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
