"""Portal links (SPEC §10): a one-time sign-in into one organization's pages,
for the product to open in an iframe for its customer.

The link carries `{session id}:{nonce}` signed with SECRET_KEY (a tampered
link fails the signature); only a hash of the nonce is stored, so a copy of
the database cannot make links. Its first visit uses it up (an UPDATE …
WHERE used_at IS NULL: of two visits at once, one wins); a second visit, or
one after `expires_at`, is refused, and so is any link older than the
longest session.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.utils import timezone

from webhooks.errors import InvalidInput
from webhooks.models import Organization, PlatformKey, PortalSession

SALT = "herald.portal"
MINUTES_RANGE = (5, 1440)
DEFAULT_MINUTES = 60


class LinkRefused(Exception):
    """Why a portal link signs nobody in: "invalid", "used" or "expired"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """What a used link grants the browser that opened it, until `expires_at`."""

    session_id: str
    organization_id: int
    read_only: bool
    expires_at: datetime


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def create(
    organization: Organization,
    *,
    minutes: object = DEFAULT_MINUTES,
    read_only: object = False,
    created_by: PlatformKey | None = None,
) -> tuple[PortalSession, str]:
    """A new portal session and its link's token (shown once)."""
    low, high = MINUTES_RANGE
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not low <= minutes <= high:
        raise InvalidInput(f"must be a whole number from {low} to {high}", "expires_in_minutes")
    if not isinstance(read_only, bool):
        raise InvalidInput("must be true or false", "read_only")
    nonce = secrets.token_urlsafe(24)
    now = timezone.now()
    session = PortalSession.objects.create(
        organization=organization,
        nonce_hash=_hash(nonce),
        read_only=read_only,
        created_at=now,
        expires_at=now + timedelta(minutes=minutes),
        created_by=created_by,
    )
    token = signing.TimestampSigner(salt=SALT).sign(f"{session.public_id}:{nonce}")
    return session, token


def redeem(token: str, now: datetime | None = None) -> Grant:
    """Use the link up; LinkRefused says why it cannot be."""
    now = now or timezone.now()
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(
            token, max_age=timedelta(minutes=MINUTES_RANGE[1])
        )
    except signing.SignatureExpired:
        raise LinkRefused("expired") from None
    except signing.BadSignature:
        raise LinkRefused("invalid") from None
    session_id, _, nonce = value.partition(":")
    session = PortalSession.objects.filter(public_id=session_id).first()
    if session is None or not hmac.compare_digest(session.nonce_hash, _hash(nonce)):
        raise LinkRefused("invalid")
    if session.used_at is not None:
        raise LinkRefused("used")
    if session.expires_at <= now:
        raise LinkRefused("expired")
    if not PortalSession.objects.filter(pk=session.pk, used_at__isnull=True).update(used_at=now):
        raise LinkRefused("used")  # another visit won
    return Grant(session.public_id, session.organization_id, session.read_only, session.expires_at)
