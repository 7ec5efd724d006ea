"""Guarantees that only show when something happens at the same time, or in
a particular order: each test here fails when its guarantee is broken (each
was checked against the mutation named in its docstring)."""

import contextlib
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

from api import ratelimit
from deliveries import actions, claiming, dispatch, publishing
from deliveries.models import Delivery, Event
from deliveries.publishing import publish
from monitoring import alerts
from monitoring.models import Alert, AlertRule
from monitoring.stats import StatsBatch
from tests.factories import MembershipFactory, OrganizationFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.models import Membership, Webhook

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
pytestmark = pytest.mark.embedded

# --- claiming --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_second_claimer_never_takes_what_the_first_holds_nor_passes_the_cap(
    org, receiver, monkeypatch
):
    """Mutation: the lane's SELECT … FOR UPDATE SKIP LOCKED removed. The first
    claimer is held after it chose its deliveries and before it leased them;
    the second claims meanwhile, on its own connection."""
    webhook = WebhookFactory(organization=org, url=receiver.url(), max_in_flight=3)
    for i in range(10):
        publish(org, "person.created", {"i": i})
    chosen, second_done = threading.Event(), threading.Event()
    original_take = claiming._take

    def take_then_wait(plans, now):
        original_take(plans, now)
        if threading.current_thread().name == "first":
            chosen.set()
            # On SQLite the second waits for this transaction to commit
            # instead (a writer at a time): this wait then times out.
            second_done.wait(2)

    monkeypatch.setattr(claiming, "_take", take_then_wait)
    results: dict[str, list] = {}

    def claimer(name: str) -> None:
        try:
            results[name] = list(dispatch.claim(10))
        finally:
            if name == "second":
                second_done.set()
            connections.close_all()

    first = threading.Thread(target=claimer, args=("first",), name="first")
    first.start()
    assert chosen.wait(10)
    second = threading.Thread(target=claimer, args=("second",), name="second")
    second.start()
    second.join(15)
    first.join(15)
    ids = [c.delivery_id for claimed in results.values() for c in claimed]
    assert results["first"]
    assert len(ids) == len(set(ids)), "a delivery was claimed twice"
    assert len(ids) <= 3, "the cap was passed"
    assert claiming.in_flight([webhook.pk])[webhook.pk] == len(ids)


# --- recording -------------------------------------------------------------------


@pytest.fixture
def streaky(org, receiver, settings):
    settings.HERALD_DISABLE_AFTER_FAILURES = 2
    settings.HERALD_DISABLE_AFTER_HOURS = 0
    return WebhookFactory(
        organization=org,
        url=receiver.url(),
        max_attempts=1,
        max_in_flight=10,
        consecutive_failures=7,
        failing_since=timezone.now() - timedelta(hours=1),
    )


def record_one_batch(org, receiver, *statuses: int):
    """One delivery per status, attempted one after the other (so in this
    order), recorded in a single batch."""
    receiver.script("/hook", *[Answer(status=s) for s in statuses])
    for i in range(len(statuses)):
        publish(org, "person.created", {"i": i})
    claimed = sorted(dispatch.claim(10), key=lambda c: c.delivery_id)
    assert len(claimed) == len(statuses)
    results = [dispatch.attempt(c) for c in claimed]
    dispatch.record(results)
    return results


def test_failures_after_a_success_in_the_same_batch_are_counted(org, receiver, streaky):
    """Mutation: only the attempts before the last success were looked at."""
    results = record_one_batch(org, receiver, 200, 500, 500)
    streaky.refresh_from_db()
    assert streaky.consecutive_failures == 2
    assert streaky.failing_since == results[1].outcome.started_at
    assert streaky.consecutive_failed_deliveries == 2
    # Two deliveries in a row ended failed, over at least 0 hours: disabled.
    assert streaky.status == Webhook.Status.DISABLED


def test_a_success_after_failures_in_the_same_batch_resets_the_streaks(org, receiver, streaky):
    record_one_batch(org, receiver, 500, 500, 200)
    streaky.refresh_from_db()
    assert streaky.consecutive_failures == 0 and streaky.failing_since is None
    assert streaky.consecutive_failed_deliveries == 0
    assert streaky.status == Webhook.Status.ACTIVE


def test_a_failure_between_successes_counts_one(org, receiver, streaky):
    results = record_one_batch(org, receiver, 500, 200, 500)
    streaky.refresh_from_db()
    assert streaky.consecutive_failures == 1
    assert streaky.failing_since == results[2].outcome.started_at
    assert streaky.consecutive_failed_deliveries == 1
    assert streaky.status == Webhook.Status.ACTIVE


def test_only_the_webhooks_of_the_batch_are_checked_for_a_streak(org, receiver, streaky):
    """A webhook whose streak passed limits lowered since its last failure is
    disabled by its own next failure, not by another webhook's batch."""
    bystander = WebhookFactory(
        organization=org,
        url=receiver.url("/other"),
        event_patterns=["other.*"],
        consecutive_failed_deliveries=5,
        failed_deliveries_since=timezone.now() - timedelta(hours=1),
    )
    record_one_batch(org, receiver, 500, 500)
    streaky.refresh_from_db()
    bystander.refresh_from_db()
    assert streaky.status == Webhook.Status.DISABLED
    assert bystander.status == Webhook.Status.ACTIVE and bystander.disabled_reason == ""


def test_a_webhook_paused_while_its_streak_ended_in_flight_stays_paused(org, receiver, streaky):
    receiver.script("/hook", Answer(status=500), Answer(status=500))
    for i in range(2):
        publish(org, "person.created", {"i": i})
    results = [dispatch.attempt(c) for c in dispatch.claim(10)]
    actions.pause_webhook(streaky)
    dispatch.record(results)
    streaky.refresh_from_db()
    assert streaky.consecutive_failed_deliveries == 2
    assert streaky.status == Webhook.Status.PAUSED and streaky.disabled_reason == ""


# --- idempotent publishing ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_publishes_with_one_key_at_once_make_one_event(org, receiver, monkeypatch):
    """Mutation: the IntegrityError fallback removed. Both publishes look for
    an earlier event before either writes one."""
    WebhookFactory(organization=org, url=receiver.url())
    # The key is only this organization's; its other events are not the answer.
    publish(OrganizationFactory(), "person.created", {}, idempotency_key="once")
    earlier = publish(org, "person.created", {"n": 0}).event
    both_looked = threading.Barrier(2, timeout=3)
    original = publishing._earlier_event

    def look_then_wait(*args):
        found = original(*args)
        # SQLite: the other waits for this transaction instead (one writer at a time).
        with contextlib.suppress(threading.BrokenBarrierError):
            both_looked.wait()
        return found

    monkeypatch.setattr(publishing, "_earlier_event", look_then_wait)
    answers: list = []
    errors: list = []

    def publisher() -> None:
        try:
            answers.append(publish(org, "person.created", {"n": 1}, idempotency_key="once"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=publisher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert errors == []
    event = Event.objects.filter(organization=org).exclude(pk=earlier.pk).get()
    assert Delivery.objects.filter(event=event).count() == 1
    assert {a.event.public_id for a in answers} == {event.public_id}
    assert sorted(a.created for a in answers) == [False, True]


# --- alerts ------------------------------------------------------------------------

NOW = datetime(2026, 1, 15, 12, 0, 30, tzinfo=UTC)


def failing_traffic(webhook, at=NOW):
    batch = StatsBatch()
    for _ in range(20):
        batch.attempt(webhook.pk, at, succeeded=False, latency_ms=100)
    batch.deliveries_failed(webhook.pk, at, 20)
    batch.write()


def test_retargeting_a_rule_resolves_its_stale_alerts_at_once(org):
    """Mutation: update_rule no longer resolves alerts of the webhooks it left."""
    first, second = (WebhookFactory(organization=org) for _ in range(2))
    AlertRule.objects.filter(organization=org).delete()
    rule = alerts.create_rule(org, metric="failed_deliveries", threshold=5)
    failing_traffic(first)
    failing_traffic(second)
    assert alerts.evaluate(NOW + timedelta(seconds=30)).opened == 2
    alerts.update_rule(rule, webhook=first.public_id)
    # No evaluation in between: the change itself resolves what it no longer covers.
    states = dict(Alert.objects.values_list("webhook_id", "state"))
    assert states == {first.pk: "open", second.pk: "resolved"}


def test_another_organizations_webhook_never_enters_an_evaluation(org):
    """Mutation: evaluate's check that a rule's webhook is its organization's removed.
    A rule pointed at another organization's webhook behind validation's back
    (a database edit) checks nothing."""
    stranger = WebhookFactory(organization=OrganizationFactory())
    AlertRule.objects.all().delete()
    rule = alerts.create_rule(org, metric="failed_deliveries", threshold=5)
    AlertRule.objects.filter(pk=rule.pk).update(webhook=stranger)
    failing_traffic(stranger)
    result = alerts.evaluate(NOW + timedelta(seconds=30))
    assert (result.checks, result.opened) == (0, 0)
    assert not Alert.objects.exists()


# --- API rate limit ----------------------------------------------------------------


def test_the_remaining_requests_are_exact_across_a_window_boundary(settings, redis_conn, db):
    """Mutation: X-RateLimit-Remaining ignores the previous window."""
    settings.HERALD_API_RATE_LIMIT = 10
    settings.HERALD_API_RATE_WINDOW_SECONDS = 60
    ratelimit._redis_skipped_until = 0.0
    start = 1_000_000 * 60
    for second in range(50, 56):  # six requests late in one window
        quota = ratelimit.hit("key_boundary", now=start + second)
    assert quota.remaining == 4
    # Ten seconds into the next window, 50/60 of the previous six still count:
    # 5 of them, plus this one: 10 - 6 = 4 left.
    assert ratelimit.hit("key_boundary", now=start + 70).remaining == 4
    # Thirty seconds in: 6 * 30/60 = 3, plus the two of this window: 5 left.
    assert ratelimit.hit("key_boundary", now=start + 90).remaining == 5


# --- the webhook page's tiles ------------------------------------------------------


@pytest.fixture
def page(client, org):
    client.force_login(MembershipFactory(organization=org, role=Membership.Role.VIEWER).user)

    def get(webhook, query=""):
        response = client.get(f"/webhooks/{webhook.public_id}/{query}")
        assert response.status_code == 200
        return response.content.decode()

    return get


def tile(html: str, name: str) -> str:
    """The label and value of the tile whose value has id `name`."""
    match = re.search(
        rf'<div class="tile-label">([^<]*)</div><div class="tile-value[^"]*" id="{name}">([^<]*)<',
        html,
    )
    assert match, name
    return f"{match.group(1)}: {match.group(2)}"


def test_a_bad_chart_value_falls_back_to_24_hours(org, page):
    """Mutation: the ?chart= fallback removed (a bad value then answers 500)."""
    webhook = WebhookFactory(organization=org)
    for bad in ("?chart=bogus", "?chart=", "?chart=1h%00"):
        html = page(webhook, bad)
        assert tile(html, "stat-failed") == "Failed (24 h): 0"
        assert 'href="?chart=24h" aria-selected="true"' in html


def test_every_tile_states_its_window_and_counts_it(org, page):
    """Mutation: the 7 d and 30 d tiles show the last 24 hours."""
    webhook = WebhookFactory(organization=org)
    batch = StatsBatch()
    now = timezone.now()
    for at, failed in ((now - timedelta(days=3), 4), (now - timedelta(minutes=5), 1)):
        for _ in range(failed):
            batch.attempt(webhook.pk, at, succeeded=False, latency_ms=100, ended="failed")
        batch.attempt(webhook.pk, at, succeeded=True, latency_ms=100, ended="succeeded")
    batch.write()
    day, week = page(webhook, "?chart=24h"), page(webhook, "?chart=7d")
    assert tile(day, "stat-failed") == "Failed (24 h): 1"
    assert tile(week, "stat-failed") == "Failed (7 d): 5"
    assert tile(day, "stat-success") == "Success rate (24 h): 50%"
    assert tile(week, "stat-success") == "Success rate (7 d): 28.6%"
    assert tile(page(webhook, "?chart=1h"), "stat-avg") == "Avg response (1 h): 100 ms"
    assert tile(page(webhook, "?chart=30d"), "stat-failed") == "Failed (30 d): 5"
