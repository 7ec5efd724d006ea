"""What went wrong with an attempt, in one sentence for people.

The sender (sender.py) records a kind (http_status, timeout, connection, dns,
tls, blocked, invalid_url) and the raw text of what failed, which is for
debugging: `ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): …
[Errno 111] Connection refused`. `describe` turns the two into "Connection
refused by 127.0.0.1:9". The raw text stays as it is (the API returns it).

Kept beside the sender, which writes the raw text this reads: the pages show
the sentence and keep the raw text one click away.
"""

import ipaddress
import re
from http import HTTPStatus
from urllib.parse import urlsplit

# host='…', port=… as urllib3 writes the connection that failed
_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")
_TIMEOUT_SETTING = re.compile(r"(?:read|connect) timeout=([\d.]+)")
_ANSWERED_LATE = re.compile(r"answered after ([\d.]+) s, timeout ([\d.]+) s")
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")
_BLOCKED_ADDRESS = re.compile(r"the address (\S+) is")
_NOT_VALID_FOR = re.compile(r"certificate is not valid for '([^']+)'")

# The refusals' endings, as the OS reports them, and what they mean.
_CONNECTION_PROBLEMS = [
    ("Connection refused", "Connection refused by {where}"),
    ("Connection reset", "{where} reset the connection"),
    ("closed connection without response", "{where} closed the connection without answering"),
    ("Network is unreachable", "No network route to {where}"),
    ("No route to host", "No network route to {where}"),
]
_TLS_PROBLEMS = [
    ("certificate has expired", "The TLS certificate of {host} has expired"),
    ("self-signed certificate", "The TLS certificate of {host} is self-signed"),
    ("self signed certificate", "The TLS certificate of {host} is self-signed"),
    ("unable to get local issuer", "The TLS certificate of {host} is not from a trusted authority"),
    ("WRONG_VERSION_NUMBER", "TLS handshake with {where} failed: does it speak plain HTTP?"),
]


def describe(
    kind: str,
    message: str = "",
    *,
    url: str = "",
    timeout_seconds: float | None = None,
    status_code: int | None = None,
) -> str:
    """One sentence for an attempt's failure (or a delivery's last one).

    `message` is the raw text the sender recorded (may be empty, as on a
    delivery row, which keeps only the kind); `url`, `timeout_seconds` and
    `status_code` fill in what the raw text does not say. "" for no failure.
    """
    if not kind:
        return ""
    host, where = _target(message, url)
    host, where = host or "the endpoint", where or "the endpoint"
    if kind == "http_status":
        return _http_status(message, status_code, host)
    if kind == "timeout":
        return _timeout(message, timeout_seconds, where)
    if kind == "connection":
        for ending, sentence in _CONNECTION_PROBLEMS:
            if ending in message:
                return sentence.format(where=where)
        return f"Could not connect to {where}"
    if kind == "dns":
        return f"Could not resolve {host}"
    if kind == "tls":
        return _tls(message, host, where)
    if kind == "blocked":
        return _blocked(message, host)
    if kind == "invalid_url":
        if "No host supplied" in message:
            return "Not a valid URL: it names no host"
        if "No connection adapters" in message or "InvalidSchema" in message:
            return "Not a valid URL: only http:// and https:// can be sent to"
        return "Not a valid URL"
    return message or kind


def _target(message: str, url: str) -> tuple[str, str]:
    """The host, and host:port, of the connection that failed: from the raw
    text when it names them, else from the webhook's URL ("" if neither)."""
    found = _HOST_PORT.search(message)
    if found:
        host, port = found.group(1), found.group(2)
        return host, _join(host, port)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a URL the sender could not use either
        return "", ""
    return host, _join(host, str(port)) if host and port else host


def _join(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _seconds(value: float | str) -> str:
    return f"{float(value):g} s"


def _http_status(message: str, status_code: int | None, host: str) -> str:
    if status_code is None:
        found = _HTTP_STATUS.search(message)
        status_code = int(found.group(1)) if found else None
    if status_code is None:
        return "The endpoint answered with an error status"
    try:
        phrase = f" {HTTPStatus(status_code).phrase}"
    except ValueError:
        phrase = ""
    who = "The endpoint" if host == "the endpoint" else host
    return f"{who} answered {status_code}{phrase}"


def _timeout(message: str, timeout_seconds: float | None, where: str) -> str:
    late = _ANSWERED_LATE.search(message)
    if late:
        return (
            f"Answered after {_seconds(late.group(1))}, past the {_seconds(late.group(2))} timeout"
        )
    setting = _TIMEOUT_SETTING.search(message)
    limit = setting.group(1) if setting else timeout_seconds
    if "connect timeout" in message or "ConnectTimeout" in message:
        within = f" within {_seconds(limit)}" if limit is not None else ""
        return f"Could not connect to {where}{within}"
    if limit is None:
        return "No answer in time"
    return f"No answer within {_seconds(limit)}"


def _tls(message: str, host: str, where: str) -> str:
    mismatch = _NOT_VALID_FOR.search(message)
    if mismatch or "mismatch" in message:
        return f"TLS certificate not valid for {mismatch.group(1) if mismatch else host}"
    for clue, sentence in _TLS_PROBLEMS:
        if clue in message:
            return sentence.format(host=host, where=where)
    if "CERTIFICATE_VERIFY_FAILED" in message:
        return f"The TLS certificate of {host} could not be verified"
    return f"TLS handshake with {where} failed"


def _blocked(message: str, host: str) -> str:
    found = _BLOCKED_ADDRESS.search(message)
    address = found.group(1) if found else host
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return f"Blocked: {address} resolves to a private or reserved address"
    if ip.is_loopback:
        what = "a loopback address"
    elif ip.is_link_local:
        what = "a link-local address"
    elif ip.is_multicast:
        what = "a multicast address"
    elif ip.is_private:
        what = "a private address"
    else:
        what = "a reserved address"
    return f"Blocked: {address} is {what}"
