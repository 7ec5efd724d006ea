"""Request signatures.

Standard Webhooks on every request (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), signed with the current secret and, during a rotation's
grace period, the old ones too. Optionally one compatibility signature in the
style of the source documents (SPEC §4), keyed with the whole secret string
and the current secret only.
"""

import base64
import hashlib
import hmac

from webhooks.secrets import secret_key_bytes, timestamp_header_name

STYLE_HEX = "hex"
STYLE_TIMESTAMPED = "timestamped"
STYLE_TIMESTAMPED_MS = "timestamped-ms"


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(
    secrets: list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(secret, msg_id, timestamp, body) for secret in secrets
        ),
    }


def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def compatibility_headers(
    style: str, header: str, secret: str, body: bytes, unix_seconds: float
) -> dict[str, str]:
    if style == STYLE_HEX:
        return {header: _hex_hmac(secret, body)}
    if style == STYLE_TIMESTAMPED:
        ts = str(int(unix_seconds))
        return {
            header: "sha256=" + _hex_hmac(secret, ts.encode() + b"." + body),
            timestamp_header_name(header): ts,
        }
    if style == STYLE_TIMESTAMPED_MS:
        ts = str(int(unix_seconds * 1000))
        return {
            header: _hex_hmac(secret, ts.encode() + b":" + body),
            timestamp_header_name(header): ts,
        }
    return {}


def signature_headers(
    *,
    secrets: list[str],
    msg_id: str,
    body: bytes,
    unix_seconds: float,
    style: str = "",
    header: str = "X-Webhook-Signature",
) -> dict[str, str]:
    headers = standard_headers(secrets, msg_id, int(unix_seconds), body)
    if style:
        headers.update(compatibility_headers(style, header, secrets[0], body, unix_seconds))
    return headers
