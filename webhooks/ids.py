"""Public identifiers: a type prefix and 26 Crockford base32 characters, time
ordered (48-bit millisecond clock, then 80 random bits), like a ULID."""

import base64
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
PUBLIC_ID_LENGTH = 26
# RFC 4648's base32 alphabet, read as Crockford's: base64.b32encode does the
# digit arithmetic in C (a publish makes two ids; the loop in Python cost more
# than the event's INSERT did).
_FROM_RFC4648 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)


def _base32(value: int) -> str:
    """`value` (below 2**130) as 26 base32 digits, most significant first."""
    # 26 digits are 130 bits: put them at the top of 17 bytes (136 bits).
    return base64.b32encode((value << 6).to_bytes(17, "big"))[:26].decode().translate(_FROM_RFC4648)


def new_public_id(prefix: str) -> str:
    millis = int(time.time() * 1000)
    return f"{prefix}_{_base32((millis << 80) | secrets.randbits(80))}"


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
