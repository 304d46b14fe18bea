"""A process holding many real TCP listeners (one per loopback address) for the load test.

Usage: python -m tests.health.listeners FIRST_ADDRESS COUNT PORT
Prints "ready" once every socket listens; then reads commands on stdin:
"close I J ..." closes those listeners (prints "closed"), EOF exits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys


async def main(first: str, count: int, port: int) -> None:
    base = ipaddress.IPv4Address(first)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    servers = [await asyncio.start_server(accept, str(base + i), port, backlog=64) for i in range(count)]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if words and words[0] == "close":
            for i in map(int, words[1:]):
                servers[i].close()
            print("closed", flush=True)
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
