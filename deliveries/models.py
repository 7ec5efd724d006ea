"""The engine's records: what was published (Event), each event's journey to
one webhook (Delivery), a worker's hold on one in flight (Lease), every HTTP
try of it (DeliveryAttempt), each webhook's place in the dispatcher's round
(Lane), and the requests to send a webhook past events again (Replay)."""

import json

from django.db import models
from django.utils import timezone

from webhooks import ids
from webhooks.models import Organization, Webhook


class Event(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=ids.event_id, editable=False)
    # No index of its own on this foreign key or on those below: an index in
    # Meta leads with the same column and serves its lookups and cascades,
    # and every row written is one index write fewer (a delivery's row is
    # written twice: published and recorded).
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    type = models.CharField(max_length=100)
    # The compact JSON text of `data`, exactly as it goes into every request body.
    data_json = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # NULL, not "", so the unique constraint ignores events without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    delivery_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            # The events page and API: an organization's events, newest first by id.
            models.Index(fields=["organization", "-id"], name="event_org_log_idx"),
            # ... of one type, or of the types a pattern selects (search.py).
            models.Index(fields=["organization", "type", "-id"], name="event_org_type_idx"),
            models.Index(fields=["created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="one_event_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"

    @property
    def data(self):
        return json.loads(self.data_json)


class Trigger(models.TextChoices):
    AUTO = "auto"
    MANUAL = "manual"
    TEST = "test"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    public_id = models.CharField(
        max_length=40, unique=True, default=ids.delivery_id, editable=False
    )
    # Indexed by Meta's indexes that lead with them (see Event.organization).
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event_type = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Of those, the ones made on request (a retry or a resend), not by the
    # retry schedule: pages show "3 of 3 scheduled, +2 manual", not "5 of 3".
    manual_attempts = models.PositiveSmallIntegerField(default=0)
    # When the next attempt is due. NULL while pending means parked: the
    # webhook is paused, and resuming sets it to now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    next_trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.AUTO)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error_kind = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The replay that last sent it again (replay.py): its progress counts it.
    replay = models.ForeignKey(
        "Replay", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "webhook"], name="one_delivery_per_webhook")
        ]
        indexes = [
            # The dispatcher's claim: due pending deliveries, oldest first.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_due_idx",
            ),
            # Claiming: a webhook's due deliveries, oldest first (claiming.py).
            models.Index(
                fields=["webhook", "next_attempt_at", "id"],
                condition=models.Q(status="pending"),
                name="delivery_webhook_due_idx",
            ),
            # An organization's pending deliveries, oldest due first (the staff console).
            models.Index(
                fields=["organization", "next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_org_pending_idx",
            ),
            # Delivery logs, newest first, per webhook and per organization.
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_log_idx"),
            models.Index(fields=["webhook", "status", "-id"], name="delivery_webhook_status_idx"),
            models.Index(fields=["organization", "-id"], name="delivery_org_log_idx"),
            # Events with a failed delivery (search.py), newest first.
            models.Index(
                fields=["organization", "-event"],
                condition=models.Q(status="failed"),
                name="delivery_org_failed_idx",
            ),
            # A replay's deliveries, to show its progress.
            models.Index(
                fields=["replay", "status"],
                condition=models.Q(replay__isnull=False),
                name="delivery_replay_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.webhook_id} ({self.status})"


class DeliveryAttempt(models.Model):
    class ErrorKind(models.TextChoices):
        NONE = "", "none"
        TIMEOUT = "timeout"
        CONNECTION = "connection"
        DNS = "dns"
        TLS = "tls"
        HTTP_STATUS = "http_status"
        BLOCKED = "blocked"
        INVALID_URL = "invalid_url"

    # Indexed by (delivery, number) in Meta (see Event.organization).
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_set", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.AUTO)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    error_kind = models.CharField(max_length=20, choices=ErrorKind.choices, blank=True)
    error_message = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["delivery", "number"]),
            models.Index(fields=["started_at"]),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


class Lease(models.Model):
    """A worker's hold on a delivery it claimed: its request is in flight
    until `until` (the webhook's timeout and a margin). A worker that died
    leaves its leases to run out, after which the deliveries can be claimed
    again (claiming.release_expired_claims). When the request has ended,
    its worker's next claim marks the lease `settled`: the request is no
    longer in flight (its slot is free to every worker), and the delivery
    is still held until the record of its attempt deletes the lease. A
    delivery taken ahead (claiming.claim) is leased settled from the start:
    its request has not started, and will only in place of one of its
    webhook that ended, whose lease counts for it until it is marked in
    flight.

    A table of its own, not a column of Delivery: it holds only the requests
    in flight, so taking and giving back a lease writes a few small index
    pages, where a column would write a new version of the delivery's wide
    row and of every one of its indexes, at a cost that grew with the
    table (bench/run.py, scenario i)."""

    # No constraints in the database: a claim does not lock the deliveries
    # it leases (claiming._take), so one deleted meanwhile may be left with
    # a lease, which runs out and goes with the others the sweeper deletes.
    delivery = models.OneToOneField(
        Delivery,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="lease",
        db_constraint=False,
    )
    # The delivery's webhook, copied: requests in flight are counted per
    # webhook on this table's index alone.
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    until = models.DateTimeField()
    # No request in flight: it ended and its attempt is not recorded yet,
    # or it has not started (taken ahead).
    settled = models.BooleanField(default=False, db_default=False)

    class Meta:
        indexes = [
            # A webhook's requests in flight now (claiming.in_flight).
            models.Index(fields=["webhook", "until"], name="lease_webhook_idx"),
            # The sweeper's look for leases that ran out.
            models.Index(fields=["until"], name="lease_until_idx"),
        ]

    def __str__(self) -> str:
        return f"lease of {self.delivery_id} until {self.until}"

    @classmethod
    def held(cls, now) -> models.Exists:
        """For filtering deliveries: whether a live lease holds the delivery
        (its request is in flight, or ended and its attempt not yet recorded)."""
        return models.Exists(cls.objects.filter(delivery=models.OuterRef("pk"), until__gte=now))


class Lane(models.Model):
    """A webhook's place in the dispatcher's round (claiming.py).

    `due_at` is the earliest time the webhook may have a delivery to claim;
    NULL when it has none pending (or is paused or disabled). Whatever makes
    a delivery claimable lowers it to then (publishing, a record that freed a
    slot, a manual retry, a resume, an expired lease); a claimer, holding the
    row's lock, raises it past what it took: to now when the webhook still
    has due deliveries (so it waits behind the lanes that have waited
    longer), to its next retry, its next rate-limit slot, or the end of its
    earliest lease when it is at its cap. `rate_next_at` is when the rate
    limit lets the webhook's next request start.
    """

    webhook = models.OneToOneField(
        Webhook, on_delete=models.CASCADE, primary_key=True, related_name="lane"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    rate_next_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["due_at"], condition=models.Q(due_at__isnull=False), name="lane_due_idx"
            )
        ]

    def __str__(self) -> str:
        return f"lane of {self.webhook_id} (due {self.due_at})"


class Replay(models.Model):
    """A request to send one webhook the events of a time range again
    (SPEC §8 `POST /webhooks/{id}/replay`, replay.py). `total` is how many
    deliveries it queued; they point back at it while it runs."""

    class Status(models.TextChoices):
        ANY = "any"
        FAILED = "failed"
        SUCCEEDED = "succeeded"
        NONE = "none"  # events the webhook never got: a backfill

    public_id = models.CharField(max_length=40, unique=True, default=ids.replay_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="replays")
    since = models.DateTimeField()
    # NULL: up to when it was asked for (requested_at).
    until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ANY)
    event_type = models.CharField(max_length=100, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    total = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["webhook", "-id"], name="replay_webhook_idx")]

    def __str__(self) -> str:
        return f"replay {self.public_id} of {self.webhook_id}"
