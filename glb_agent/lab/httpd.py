"""The lab's service on every proxy: says which proxy answered, and echoes for long tests.

``GET /`` -> ``{"proxy": NAME, "client": ADDR}``; ``GET /healthz`` -> 200 while the file
``--down-file`` does not exist (so tests can fail a backend without killing connections);
``POST /echo`` returns the body. HTTP/1.1 keep-alive, one thread per connection, so
long-lived connections through the VIP stay open across steps of the e2e test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(name: str, down_file: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One segment per response, sent at once: separate header/body writes with Nagle on
        # stall keep-alive clients on the peer's delayed ACK (~40 ms per request).
        wbufsize = -1
        disable_nagle_algorithm = True

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                down = down_file is not None and os.path.exists(down_file)
                self._send(503 if down else 200, b"down\n" if down else b"ok\n", "text/plain")
            else:
                body = json.dumps({"proxy": name, "client": self.client_address[0]}) + "\n"
                self._send(200, body.encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            data = self.rfile.read(length)
            self._send(200, data, "application/octet-stream")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="lab HTTP service for a proxy")
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--bind", default="::")
    ap.add_argument("--down-file")
    args = ap.parse_args(argv)

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
        daemon_threads = True
        allow_reuse_address = True

    Server((args.bind, args.port), make_handler(args.name, args.down_file)).serve_forever()


if __name__ == "__main__":
    main()
