import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from webhooks import ids
from webhooks.secrets import masked, new_signing_secret

API_KEY_PREFIX = "hk_"
PLATFORM_KEY_PREFIX = "hp_"
MAX_OLD_SECRETS = 10


class Organization(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=ids.org_id, editable=False)
    name = models.CharField(max_length=200)
    # The product's own id for this customer (SPEC §10): unique, never `org_…`.
    external_id = models.CharField(  # noqa: DJ001 (NULL: many organizations have none)
        max_length=100, unique=True, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        VIEWER = "viewer"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.organization.name}"

    @property
    def can_manage(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


def hash_api_key(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing
    # to brute-force, and lookups stay a single indexed query.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_raw_key(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=ids.api_key_id, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(
        max_length=16, help_text="The first characters, to recognise the key."
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @classmethod
    def issue(cls, organization: Organization, name: str = "") -> tuple["ApiKey", str]:
        """Create a key; the raw key is returned once and never stored."""
        raw_key = new_raw_key(API_KEY_PREFIX)
        key = cls.objects.create(
            organization=organization,
            name=name,
            prefix=raw_key[:10],
            key_hash=hash_api_key(raw_key),
        )
        return key, raw_key

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PlatformKey(models.Model):
    """The product's back end (SPEC §10): one key for every organization,
    which a call names in the `Herald-Organization` header."""

    public_id = models.CharField(
        max_length=40, unique=True, default=ids.platform_key_id, editable=False
    )
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "platform key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @classmethod
    def issue(cls, name: str) -> tuple["PlatformKey", str]:
        """Create a key; the raw key is returned once and never stored."""
        raw_key = new_raw_key(PLATFORM_KEY_PREFIX)
        key = cls.objects.create(name=name, prefix=raw_key[:10], key_hash=hash_api_key(raw_key))
        return key, raw_key

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PortalSession(models.Model):
    """A one-time link into one organization's pages (SPEC §10). Only a hash
    of its nonce is kept; the link's first visit uses it up."""

    public_id = models.CharField(
        max_length=40, unique=True, default=ids.portal_session_id, editable=False
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="portal_sessions"
    )
    nonce_hash = models.CharField(max_length=64)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        PlatformKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.public_id} for {self.organization_id}"


class Webhook(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        DISABLED = "disabled"

    class SignatureStyle(models.TextChoices):
        NONE = "", "Standard Webhooks only"
        HEX = "hex", "hex: HMAC of the body"
        TIMESTAMPED = "timestamped", "timestamped: sha256= HMAC of '{ts}.{body}'"
        TIMESTAMPED_MS = "timestamped-ms", "timestamped-ms: HMAC of '{ts_ms}:{body}'"

    public_id = models.CharField(max_length=40, unique=True, default=ids.webhook_id, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhooks"
    )
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    url = models.URLField(max_length=2048)
    event_patterns = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    disabled_reason = models.CharField(max_length=500, blank=True)

    secret = models.CharField(max_length=100, default=new_signing_secret)
    # [{"secret": "whsec_…", "expires_at": "ISO time"}], newest first.
    previous_secrets = models.JSONField(default=list, blank=True)
    signature_style = models.CharField(
        max_length=20, choices=SignatureStyle.choices, default="", blank=True
    )
    signature_header = models.CharField(max_length=100, default="X-Webhook-Signature")
    headers = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.PositiveSmallIntegerField(default=10)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    verify_tls = models.BooleanField(default=True)
    # Fairness (SPEC §3), across every worker together: at most this many of
    # its requests in flight at once, at most `rate_limit` starting in any
    # one second (none: no limit), and, when `ordered`, one at a time in
    # publish order (max_in_flight is then 1).
    max_in_flight = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    rate_limit = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Requests per second; empty for no limit.",
    )
    ordered = models.BooleanField(
        default=False, help_text="One at a time, in publish order (max in flight 1)."
    )

    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    # Deliveries (not attempts) that ended failed since the last one that
    # succeeded, and when the first of them ended: auto-disable reads these.
    consecutive_failed_deliveries = models.PositiveIntegerField(default=0)
    failed_deliveries_since = models.DateTimeField(null=True, blank=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return self.name or self.url

    def clean(self) -> None:
        if self.ordered and self.max_in_flight != 1:
            raise ValidationError({"max_in_flight": "An ordered webhook sends one at a time: 1."})

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The current secret, then old ones still inside their grace period."""
        now = now or timezone.now()
        keys = [self.secret]
        for old in self.previous_secrets:
            if datetime.fromisoformat(old["expires_at"]) > now:
                keys.append(old["secret"])
        return keys

    def rotate_secret(self, grace: timedelta | None = None) -> str:
        if grace is None:
            grace = timedelta(hours=settings.HERALD_SECRET_GRACE_HOURS)
        now = timezone.now()
        kept = [
            old for old in self.previous_secrets if datetime.fromisoformat(old["expires_at"]) > now
        ]
        if grace > timedelta(0):
            kept.insert(0, {"secret": self.secret, "expires_at": (now + grace).isoformat()})
        self.previous_secrets = kept[:MAX_OLD_SECRETS]
        self.secret = new_signing_secret()
        return self.secret

    @property
    def masked_secret(self) -> str:
        return masked(self.secret)


class EventType(models.Model):
    """The organization's catalog; a type joins it the first time it is published."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="event_types"
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    example = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="one_type_name_per_org")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
