"""Attempt errors read as sentences (SPEC §7), one per kind the sender
produces, from the raw text it records; the raw text itself is unchanged."""

import http.server
import socket
import threading
import time

import pytest

from deliveries import sender
from deliveries.failures import describe

# Raw texts as the sender records them (captured from real failures).
REFUSED = (
    "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded "
    "with url: / (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): "
    'Failed to establish a new connection: [Errno 111] Connection refused"))'
)
READ_TIMEOUT = (
    "ReadTimeout: HTTPConnectionPool(host='127.0.0.1', port=57707): Read timed out. "
    "(read timeout=10)"
)
CONNECT_TIMEOUT = (
    "ConnectTimeout: HTTPConnectionPool(host='10.1.2.3', port=80): Max retries exceeded with "
    "url: / (Caused by ConnectTimeoutError(<HTTPConnection(host='10.1.2.3', port=80) at 0x7f>, "
    "'Connection to 10.1.2.3 timed out. (connect timeout=1.5)'))"
)
NOT_RESOLVED = (
    "ConnectionError: HTTPConnectionPool(host='example.invalid', port=80): Max retries "
    'exceeded with url: / (Caused by NameResolutionError("HTTPConnection(host='
    "'example.invalid', port=80): Failed to resolve 'example.invalid' ([Errno -2] Name or "
    'service not known)"))'
)
HOSTNAME_MISMATCH = (
    "SSLError: HTTPSConnectionPool(host='example.com', port=443): Max retries exceeded with "
    'url: / (Caused by SSLError(SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] '
    "certificate verify failed: Hostname mismatch, certificate is not valid for "
    "'example.com'. (_ssl.c:1006)\")))"
)
SELF_SIGNED = (
    "SSLError: HTTPSConnectionPool(host='127.0.0.1', port=42143): Max retries exceeded with "
    "url: / (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
    "certificate verify failed: self-signed certificate (_ssl.c:1006)')))"
)
EXPIRED = (
    "SSLError: HTTPSConnectionPool(host='old.example', port=443): Max retries exceeded with "
    "url: / (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
    "certificate verify failed: certificate has expired (_ssl.c:1006)')))"
)
PLAIN_HTTP = (
    "SSLError: HTTPSConnectionPool(host='127.0.0.1', port=58221): Max retries exceeded with "
    "url: / (Caused by SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number "
    "(_ssl.c:1006)')))"
)


@pytest.mark.parametrize(
    "kind, message, context, sentence",
    [
        ("connection", REFUSED, {}, "Connection refused by 127.0.0.1:9"),
        (
            "connection",
            "ConnectionError: ('Connection aborted.', ConnectionResetError(104, "
            "'Connection reset by peer'))",
            {"url": "https://hooks.example.com/in"},
            "hooks.example.com:443 reset the connection",
        ),
        (
            "connection",
            "ConnectionError: ('Connection aborted.', RemoteDisconnected('Remote end closed "
            "connection without response'))",
            {"url": "http://hooks.example.com:8080/in"},
            "hooks.example.com:8080 closed the connection without answering",
        ),
        (
            "connection",
            "",
            {"url": "http://127.0.0.1:9/webhooks"},
            "Could not connect to 127.0.0.1:9",
        ),
        ("timeout", READ_TIMEOUT, {}, "No answer within 10 s"),
        ("timeout", "", {"timeout_seconds": 5}, "No answer within 5 s"),
        ("timeout", CONNECT_TIMEOUT, {}, "Could not connect to 10.1.2.3:80 within 1.5 s"),
        (
            "timeout",
            "answered after 12.3 s, timeout 10 s",
            {},
            "Answered after 12.3 s, past the 10 s timeout",
        ),
        ("dns", NOT_RESOLVED, {}, "Could not resolve example.invalid"),
        (
            "dns",
            "ConnectionError: Failed to resolve domain",
            {"url": "https://example.invalid/hook"},
            "Could not resolve example.invalid",
        ),
        ("tls", HOSTNAME_MISMATCH, {}, "TLS certificate not valid for example.com"),
        ("tls", SELF_SIGNED, {}, "The TLS certificate of 127.0.0.1 is self-signed"),
        ("tls", EXPIRED, {}, "The TLS certificate of old.example has expired"),
        (
            "tls",
            PLAIN_HTTP,
            {},
            "TLS handshake with 127.0.0.1:58221 failed: does it speak plain HTTP?",
        ),
        (
            "tls",
            "",
            {"url": "https://secure.example/x"},
            "TLS handshake with secure.example:443 failed",
        ),
        (
            "blocked",
            "Refused: the address 10.0.0.1 is private, loopback or reserved",
            {},
            "Blocked: 10.0.0.1 is a private address",
        ),
        (
            "blocked",
            "Refused: the address 127.0.0.1 is private, loopback or reserved",
            {},
            "Blocked: 127.0.0.1 is a loopback address",
        ),
        (
            "blocked",
            "Refused: the address 169.254.169.254 is private, loopback or reserved",
            {},
            "Blocked: 169.254.169.254 is a link-local address",
        ),
        (
            "blocked",
            "",
            {"url": "https://intranet.example/hook"},
            "Blocked: intranet.example resolves to a private or reserved address",
        ),
        (
            "http_status",
            "HTTP 503",
            {"url": "https://hooks.example.com/"},
            "hooks.example.com answered 503 Service Unavailable",
        ),
        ("http_status", "", {"status_code": 410}, "The endpoint answered 410 Gone"),
        ("http_status", "HTTP 599", {"url": "http://h.example/"}, "h.example answered 599"),
        (
            "invalid_url",
            "InvalidURL: Invalid URL 'http:///nohost': No host supplied",
            {},
            "Not a valid URL: it names no host",
        ),
        (
            "invalid_url",
            "InvalidSchema: No connection adapters were found for 'ftp://x.example/'",
            {},
            "Not a valid URL: only http:// and https:// can be sent to",
        ),
        ("", "", {}, ""),
    ],
)
def test_each_kind_of_failure_reads_as_a_sentence(kind, message, context, sentence):
    assert describe(kind, message, **context) == sentence


def test_every_kind_the_engine_records_has_its_own_sentence():
    from deliveries.models import DeliveryAttempt

    kinds = [k for k in DeliveryAttempt.ErrorKind.values if k]
    sentences = {describe(k, url="https://hooks.example.com/", timeout_seconds=10) for k in kinds}
    assert len(sentences) == len(kinds)
    assert not any(s in kinds for s in sentences)  # none falls back to the bare kind


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def slow_server():
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(1.5)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _sent(url: str, timeout: float = 5, allow_private: bool = True) -> str:
    outcome = sender.post(url, b"{}", {}, timeout=timeout, allow_private=allow_private)
    assert outcome.error_kind and outcome.error_message  # the raw text is kept as it was
    return describe(outcome.error_kind, outcome.error_message, url=url, timeout_seconds=timeout)


def test_the_senders_real_failures_read_as_sentences(receiver, slow_server, tls_receiver):
    from tests.receiver import Answer

    port = _free_port()
    assert _sent(f"http://127.0.0.1:{port}/") == f"Connection refused by 127.0.0.1:{port}"
    assert _sent(slow_server, timeout=0.5) == "No answer within 0.5 s"
    assert _sent("http://example.invalid/") == "Could not resolve example.invalid"
    assert _sent(tls_receiver.url()).startswith("The TLS certificate of 127.0.0.1")
    assert (
        _sent("http://10.0.0.1/", allow_private=False) == "Blocked: 10.0.0.1 is a private address"
    )
    assert _sent("http:///nohost") == "Not a valid URL: it names no host"
    receiver.script("/hook", Answer(status=503))
    assert _sent(receiver.url("/hook")) == "127.0.0.1 answered 503 Service Unavailable"
