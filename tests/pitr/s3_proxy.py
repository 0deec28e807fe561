"""A loopback HTTP proxy in front of the moto server that can hold one request forever, before or after
forwarding it: how the WAL tests kill ``wal-push`` in the middle of its PutObject (nothing stored yet,
or stored by S3 but the answer never received) without a fault hook in the agent."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

When = Literal["before", "after"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class Hold:
    """Hold the first PUT whose path contains ``path_part``: ``before`` forwarding it, or ``after`` moto
    answered (the object is then stored, the client never hears so)."""

    path_part: str
    when: When
    reached: threading.Event = field(default_factory=threading.Event)
    taken: bool = False
    forwarded: bool = False


class StallingProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.holds: list[Hold] = []
        self.release = threading.Event()
        self.puts: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _relay(self) -> None:
                body = self._body()
                hold = proxy._hold_for(self.command, self.path)
                if hold is not None and hold.when == "before":
                    hold.reached.set()
                    proxy.release.wait()
                    return
                connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                connection.close()
                if hold is not None:
                    hold.forwarded = True
                    hold.reached.set()
                    proxy.release.wait()
                    return
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hold(self, path_part: str, when: When) -> Hold:
        hold = Hold(path_part, when)
        with self._lock:
            self.holds.append(hold)
        return hold

    def _hold_for(self, method: str, path: str) -> Hold | None:
        if method != "PUT":
            return None
        with self._lock:
            self.puts.append(path)
            for hold in self.holds:
                if hold.path_part in path and not hold.taken:
                    hold.taken = True
                    return hold
        return None


@contextmanager
def stalling_proxy(upstream: str) -> Iterator[StallingProxy]:
    proxy = StallingProxy(upstream)
    thread = threading.Thread(target=proxy.server.serve_forever, name="s3-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        proxy.server.shutdown()
        proxy.server.server_close()
