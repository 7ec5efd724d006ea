"""The demo's webhook receiver: /healthy answers quickly, /flaky fails now
and then (500, or 503 with Retry-After), /slow takes seconds."""

import logging
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("herald.demo_receiver")


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        path = self.path.split("?")[0]
        status, headers = 200, {}
        if path == "/healthy":
            time.sleep(random.uniform(0.01, 0.12))
        elif path == "/flaky":
            time.sleep(random.uniform(0.02, 0.3))
            roll = random.random()
            if roll < 0.2:
                status = 500
            elif roll < 0.3:
                status, headers = 503, {"Retry-After": "10"}
        elif path == "/slow":
            time.sleep(random.uniform(1.5, 4.0))
        else:
            status = 404
        body = b'{"received":true}' if status == 200 else b'{"error":"demo failure"}'
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log.info("%s %s %s", path, self.headers.get("webhook-id"), status)

    def log_message(self, *args) -> None:
        pass


def serve(host: str, port: int) -> None:
    server = ThreadingHTTPServer((host, port), DemoHandler)
    server.daemon_threads = True
    log.info("demo receiver listening on http://%s:%d", host, port)
    server.serve_forever()
