"""A real HTTP receiver on loopback for tests: it records every request and
answers from a script (status, headers, body, delay), per path."""

import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request arrived

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver:
    def __init__(self, tls_cert: str | None = None, tls_key: str | None = None) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._defaults: dict[str, Answer] = {}
        self._arrived = threading.Condition()
        self.in_flight = 0
        self.max_in_flight = 0
        # The same, per path: how many of one endpoint's requests overlapped.
        self.in_flight_by_path: dict[str, int] = defaultdict(int)
        self.max_in_flight_by_path: dict[str, int] = defaultdict(int)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                path = self.path
                with receiver._arrived:
                    receiver.requests.append(
                        Received(path, dict(self.headers.items()), body, time.time())
                    )
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                    receiver.in_flight_by_path[path] += 1
                    receiver.max_in_flight_by_path[path] = max(
                        receiver.max_in_flight_by_path[path], receiver.in_flight_by_path[path]
                    )
                    receiver._arrived.notify_all()
                answer = receiver._next_answer(path)
                if answer.delay:
                    time.sleep(answer.delay)
                with receiver._arrived:
                    receiver.in_flight -= 1
                    receiver.in_flight_by_path[path] -= 1
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_PUT = do_POST

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.scheme = "http"
        if tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to `path` with these, in order."""
        self._scripts[path].extend(answers)

    def always(self, path: str, answer: Answer) -> None:
        """Answer every request to `path` (after any script) with this."""
        self._defaults[path] = answer

    def _next_answer(self, path: str) -> Answer:
        with self._arrived:
            if self._scripts[path]:
                return self._scripts[path].popleft()
        return self._defaults.get(path, Answer())

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                got = [r for r in self.requests if path is None or r.path == path]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} requests to {path or 'any path'}, got {len(got)}"
                    )
                self._arrived.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
