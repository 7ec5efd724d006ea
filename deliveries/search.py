"""Finding events (SPEC §7 events page, §8 `GET /events`): by type (exact or
a pattern), time range, Herald's own events or not, and whether any of their
deliveries failed; and by an id someone pasted.

Every filter is an indexed condition: a pattern becomes the organization's
matching types from the catalog (which keeps every type ever published)
looked up on the (organization, type, id) index; "has failed deliveries" a
semi-join on the failed deliveries' partial index.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from deliveries.actions import TEST_EVENT_TYPE
from deliveries.models import Delivery, Event
from webhooks import ids, patterns
from webhooks.errors import InvalidInput
from webhooks.models import EventType, Organization


@dataclass
class EventFilters:
    type: str = ""  # an exact type or a pattern (`order.*`); empty for any
    since: datetime | None = None
    until: datetime | None = None
    include_operational: bool = False
    failed_only: bool = False

    def check(self) -> None:
        """InvalidInput naming the field, for a bad pattern or an empty range."""
        if self.type and not patterns.is_valid_pattern(self.type):
            raise InvalidInput(f"must be {patterns.PATTERN_RULE}", "type")
        if self.since and self.until and self.since >= self.until:
            raise InvalidInput("must be later than since", "until")


def matching_types(organization: Organization, pattern: str) -> list[str]:
    """The types `pattern` selects among what the organization published."""
    if "*" not in pattern:
        return [pattern]
    known = set(EventType.objects.filter(organization=organization).values_list("name", flat=True))
    known.add(TEST_EVENT_TYPE)  # sent to one webhook, never catalogued
    return sorted(t for t in known if patterns.matches(pattern, t))


def find_events(organization: Organization, filters: EventFilters) -> QuerySet[Event]:
    """The organization's events that pass `filters` (unordered: page them)."""
    filters.check()
    events = Event.objects.filter(organization=organization)
    if filters.type and filters.type != "*":
        types = matching_types(organization, filters.type)
        events = events.filter(type__in=types)
        # A pattern naming herald.* asks for them; an exact herald type too.
        asked_for_operational = patterns.is_operational(filters.type)
    else:
        asked_for_operational = False
    if not (filters.include_operational or asked_for_operational):
        events = events.exclude(type__startswith=patterns.OPERATIONAL_PREFIX)
    if filters.since:
        events = events.filter(created_at__gte=filters.since)
    if filters.until:
        events = events.filter(created_at__lt=filters.until)
    if filters.failed_only:
        failed = Delivery.objects.filter(organization=organization, status=Delivery.Status.FAILED)
        events = events.filter(pk__in=failed.values("event_id"))
    return events


def clean_pasted_id(text: str) -> str:
    """An id as people paste it: surrounding spaces, quotes or angle brackets
    dropped, case kept (ids are lowercase; a capitalised one names nothing)."""
    return text.strip().strip("\"'`<>()[]").strip()


def event_for_id(organization: Organization, text: str) -> Event | None:
    """The event a pasted `evt_…` id names, or the event of a pasted `dlv_…`
    delivery id; None for anything else."""
    public_id = clean_pasted_id(text)
    if ids.looks_like(public_id, "evt"):
        return Event.objects.filter(organization=organization, public_id=public_id).first()
    if ids.looks_like(public_id, "dlv"):
        delivery = (
            Delivery.objects.filter(organization=organization, public_id=public_id)
            .select_related("event")
            .first()
        )
        return delivery.event if delivery else None
    return None
