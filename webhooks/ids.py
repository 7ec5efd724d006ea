"""Public identifiers: a type prefix and 26 Crockford base32 characters, time
ordered (48-bit millisecond clock, then 80 random bits), like a ULID."""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
PUBLIC_ID_LENGTH = 26


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_public_id(prefix: str) -> str:
    millis = int(time.time() * 1000)
    return f"{prefix}_{_base32(millis, 10)}{_base32(secrets.randbits(80), 16)}"


def looks_like(public_id: str, prefix: str) -> bool:
    head, _, tail = public_id.partition("_")
    return (
        head == prefix and len(tail) == PUBLIC_ID_LENGTH and all(char in _ALPHABET for char in tail)
    )


def org_id() -> str:
    return new_public_id("org")


def webhook_id() -> str:
    return new_public_id("wh")


def event_id() -> str:
    return new_public_id("evt")


def delivery_id() -> str:
    return new_public_id("dlv")


def api_key_id() -> str:
    return new_public_id("key")


def alert_rule_id() -> str:
    return new_public_id("rule")


def alert_id() -> str:
    return new_public_id("alrt")


def platform_key_id() -> str:
    return new_public_id("pkey")


def portal_session_id() -> str:
    return new_public_id("ps")


def replay_id() -> str:
    return new_public_id("rpl")
