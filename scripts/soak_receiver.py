"""The soak test's webhook receivers (scripts/soak.py starts this): one
loopback HTTP server, one behaviour per path, every request recorded.

    python scripts/soak_receiver.py PORT RECORDS_FILE

Paths (the soak test points one webhook at each):
  /ok, /orders, /ops  200 at once
  /fail               500, always
  /flap               200 for FLAP_SECONDS, then 503 (Retry-After: 1) for FLAP_SECONDS, …
  /hang               answers 200 only after HANG_SECONDS (longer than the webhook's timeout)
  /slow               200 after 0.5–1.5 s (within the webhook's timeout)

Each request appends one tab-separated line to RECORDS_FILE, written when
the request arrives: arrival time (Unix seconds), path, the `webhook-id`
header (the event id), the envelope's `webhookId`, and the status this
receiver answers (0 for /hang: Herald has given up before the answer goes).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAP_SECONDS = 2.0
HANG_SECONDS = 3.0
SLOW_SECONDS = (0.5, 1.5)


def answer_for(path: str) -> tuple[int, float, dict[str, str]]:
    """(status, delay in seconds, extra headers) for a request to `path`."""
    if path == "/fail":
        return 500, 0.0, {}
    if path == "/flap":
        if int(time.time() / FLAP_SECONDS) % 2:
            return 503, 0.0, {"Retry-After": "1"}
        return 200, 0.0, {}
    if path == "/hang":
        return 200, HANG_SECONDS, {}
    if path == "/slow":
        return 200, random.uniform(*SLOW_SECONDS), {}
    return 200, 0.0, {}


def main() -> None:
    port, records_path = int(sys.argv[1]), sys.argv[2]
    records = open(records_path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            status, delay, headers = answer_for(path)
            try:
                webhook = json.loads(body).get("webhookId", "")
            except ValueError:
                webhook = ""
            recorded = 0 if path == "/hang" else status
            line = f"{arrived:.6f}\t{path}\t{self.headers.get('webhook-id', '')}\t{webhook}\t{recorded}\n"
            with lock:
                if not records.closed:
                    records.write(line)
            if delay:
                time.sleep(delay)
            payload = b"ok" if status < 300 else b"no"
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # readiness probe
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"up")

        def log_message(self, *args) -> None:
            pass

        def handle(self) -> None:
            # Herald hung up (a timeout): expected for /hang.
            with contextlib.suppress(ConnectionError, TimeoutError):
                super().handle()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        with lock:
            records.close()


if __name__ == "__main__":
    main()
