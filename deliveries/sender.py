"""Transport: one signed POST, its outcome classified. No database here, so
it runs in the dispatcher's worker threads.

Connections go through requests-hardened, which resolves the host once,
refuses private, loopback, link-local, multicast and reserved addresses
(unless HERALD_ALLOW_PRIVATE_TARGETS) and connects to the address it checked.
Redirects are never followed.
"""

import functools
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.cookiejar import DefaultCookiePolicy

import requests
import urllib3.exceptions
from django.conf import settings
from django.utils import timezone
from requests.cookies import RequestsCookieJar
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress

_local = threading.local()
# verify_tls=False is a per-webhook choice its owner made; one warning per
# request about it would drown the worker's log.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
_CHUNK = 16 * 1024


def user_agent() -> str:
    return f"Herald-Webhooks/{settings.HERALD_VERSION}"


def _session(allow_private: bool) -> requests.Session:
    sessions = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = {}
    session = sessions.get(allow_private)
    if session is None:
        session = HTTPSession(
            Config(
                ip_filter_enable=not allow_private,
                ip_filter_allow_loopback_ips=False,
                never_redirect=True,
                default_timeout=(10, 10),
                user_agent_override=user_agent(),
            )
        )
        # Proxies from the environment would bypass the address check.
        session.trust_env = False
        # A receiver's Set-Cookie is never kept, so never sent with a later delivery.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        sessions[allow_private] = session
    return session


@dataclass
class Outcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error_kind: str = ""
    error_message: str = ""

    @property
    def succeeded(self) -> bool:
        return (
            not self.error_kind and self.status_code is not None and 200 <= self.status_code < 300
        )


@functools.lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    """The URL as requests sends it (IDNA host, quoted path), worked out
    once per webhook URL rather than once per request."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request.url


def _prepare(session: requests.Session, url: str, body: bytes, headers: dict[str, str]):
    """The POST as Session.request would prepare it (the session's default
    headers, then ours), without the per-request merging of settings this
    sender never uses (params, auth, cookies, environment proxies): half
    the CPU a request cost."""
    request = requests.PreparedRequest()
    request.method = "POST"
    request.url = _prepared_url(url)
    request.headers = CaseInsensitiveDict(session.headers)
    request.headers.update(headers)
    request.headers["Content-Length"] = str(len(body))
    request.body = body
    request.hooks = default_hooks()
    # Session.send reads it when the answer is a redirect (to describe the
    # next request, which is never made).
    request._cookies = RequestsCookieJar()
    return request


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
        if exc is None:
            break
    return


def classify(exc: BaseException) -> str:
    chain = list(_chain(exc))
    for link in chain:
        for arg in getattr(link, "args", ()):
            if isinstance(arg, BaseException) and arg not in chain:
                chain.append(arg)
    for link in chain:
        if isinstance(link, InvalidIPAddress):
            return "blocked"
    for link in chain:
        if isinstance(link, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return "dns"
        if isinstance(link, requests.ConnectionError) and "resolve domain" in str(link):
            return "dns"
    for link in chain:
        if isinstance(link, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
            return "tls"
        # urllib3's NewConnectionError (refused, unreachable) subclasses its
        # ConnectTimeoutError for history's sake: it is not a timeout.
        if isinstance(link, urllib3.exceptions.NewConnectionError):
            return "connection"
    for link in chain:
        if isinstance(
            link,
            requests.Timeout | urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError,
        ):
            return "timeout"
        if isinstance(
            link,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema,
        ):
            return "invalid_url"
    return "connection"


def _describe(exc: BaseException, kind: str) -> str:
    if kind == "blocked":
        return f"Refused: the address {exc} is private, loopback or reserved"
    return f"{type(exc).__name__}: {exc}"[:500]


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    verify_tls: bool = True,
    allow_private: bool | None = None,
) -> Outcome:
    """POST `body` and read at most HERALD_RESPONSE_READ_BYTES of the answer.

    Success is a 2xx whose status line arrived within `timeout`.
    """
    if allow_private is None:
        allow_private = settings.HERALD_ALLOW_PRIVATE_TARGETS
    started_at = timezone.now()
    start = time.monotonic()
    response = None
    try:
        session = _session(allow_private)
        response = session.send(
            _prepare(session, url, body, headers),
            timeout=(timeout, timeout),
            verify=verify_tls,
            stream=True,
            allow_redirects=False,
            proxies={},
            cert=None,
        )
        answered_after = time.monotonic() - start
        body_text, complete = _read_limited(response, deadline=start + timeout)
        outcome = Outcome(
            started_at=started_at,
            duration_ms=_ms_since(start),
            status_code=response.status_code,
            headers=dict(response.headers),
            body=body_text,
        )
        if complete:
            # Read to the end: hand the connection back to the pool for reuse.
            response.raw.release_conn()
            response = None
        if answered_after > timeout:
            outcome.error_kind = "timeout"
            outcome.error_message = f"answered after {answered_after:.1f} s, timeout {timeout} s"
        elif not outcome.succeeded:
            outcome.error_kind = "http_status"
            outcome.error_message = f"HTTP {outcome.status_code}"
        return outcome
    except Exception as exc:  # every failure is an attempt to record, never a crash
        kind = classify(exc)
        return Outcome(
            started_at=started_at,
            duration_ms=_ms_since(start),
            error_kind=kind,
            error_message=_describe(exc, kind),
        )
    finally:
        if response is not None:
            response.close()


def _read_limited(response: requests.Response, deadline: float) -> tuple[str, bool]:
    """The stored part of the body, and whether the body was read to its end."""
    limit = settings.HERALD_RESPONSE_READ_BYTES
    chunks: list[bytes] = []
    size = 0
    complete = False
    try:
        while size <= limit and time.monotonic() < deadline:
            chunk = response.raw.read(_CHUNK, decode_content=True)
            if not chunk:
                complete = True
                break
            chunks.append(chunk)
            size += len(chunk)
    except (urllib3.exceptions.HTTPError, OSError):
        pass  # the status already arrived; a broken body does not change it
    stored = b"".join(chunks)[: settings.HERALD_RESPONSE_STORE_BYTES]
    return stored.decode("utf-8", errors="replace"), complete


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)
