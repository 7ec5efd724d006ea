"""Signing secrets and the header names a webhook's signatures travel in.

A webhook's secret is `whsec_` + base64 of 32 random bytes (Standard
Webhooks). The engine (deliveries.signing) signs with it; validation checks
that a custom header does not collide with the signature's headers. Both
read the naming rules here, so the engine depends on this app and never the
other way round.
"""

import base64
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks signature: the base64 after `whsec_`."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def masked(secret: str) -> str:
    return SECRET_PREFIX + "•" * 8 + secret[-4:]


def timestamp_header_name(signature_header: str) -> str:
    """The timestamp companion of a compatibility signature header (SPEC §4):
    `X-Twenty-Signature` → `X-Twenty-Timestamp`; otherwise `-Timestamp` appended."""
    if signature_header.lower().endswith("-signature"):
        return signature_header[: -len("-signature")] + "-Timestamp"
    return signature_header + "-Timestamp"
