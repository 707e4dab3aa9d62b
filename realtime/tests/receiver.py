"""A real HTTP receiver for outbound webhook tests: a ThreadingHTTPServer on a port of its own, in a
thread, answering each request from a script (status, headers, body, a hang) and recording what it
got (headers, raw body) for the official ``standardwebhooks`` package to verify."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The outbound helper's port range (wt BRIEF): 19100-19199.
PORTS = range(19100, 19200)
_port_lock = threading.Lock()
_next = [0]


def port_free() -> int:
    with _port_lock:
        for _ in range(len(PORTS)):
            port = PORTS[_next[0] % len(PORTS)]
            _next[0] += 1
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port in 19100-19199")


@dataclass
class Answer:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes = b"ok"
    hang: float = 0.0  # seconds to wait before answering (released early when the receiver stops)


@dataclass
class Received:
    headers: dict
    body: bytes
    at: float
    others_busy: int  # requests of *other* receivers in progress when this one arrived


class Receiver:
    """``script``: answers for the next requests, in order; then ``default``."""

    busy_total = 0  # requests in progress across every receiver (hangs included)
    _busy_lock = threading.Lock()

    def __init__(self, *script: Answer, default: Answer | None = None, path: str = "/hook"):
        self.script = list(script)
        self.default = default or Answer()
        self.received: list[Received] = []
        self.busy = 0
        self.path = path
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.port = port_free()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with Receiver._busy_lock:
                    others = Receiver.busy_total - receiver.busy
                    Receiver.busy_total += 1
                    receiver.busy += 1
                try:
                    with receiver._lock:
                        receiver.received.append(Received(
                            {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(), others))
                        answer = receiver.script.pop(0) if receiver.script else receiver.default
                    if answer.hang:
                        receiver._stop.wait(answer.hang)
                    try:
                        self.send_response(answer.status)
                        for name, value in answer.headers.items():
                            self.send_header(name, value)
                        self.send_header("Content-Length", str(len(answer.body)))
                        self.end_headers()
                        self.wfile.write(answer.body)
                    except OSError:  # the sender gave up (timeout) and closed the connection
                        pass
                finally:
                    with Receiver._busy_lock:
                        Receiver.busy_total -= 1
                        receiver.busy -= 1

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a sender that gave up mid-answer (timeout): expected here

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name=f"receiver-{self.port}")
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
