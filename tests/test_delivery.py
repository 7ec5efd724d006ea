"""The dispatcher against real HTTP receivers on loopback: what is sent, how
outcomes are classified and recorded, and what happens next."""

import json
import random
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from deliveries import actions, claiming, dispatch, retry, signals
from deliveries.models import Delivery, DeliveryAttempt, Lane, Lease, Trigger
from deliveries.publishing import publish
from monitoring import stats as metrics
from monitoring.models import WebhookStats
from tests.conftest import deliver_due
from tests.factories import WebhookFactory, leased_until
from tests.receiver import Answer
from webhooks.models import Webhook


def only_delivery():
    return Delivery.objects.get()


def verify_standard(received, secret):
    return StandardWebhook(secret).verify(received.body, received.headers)


class TestASuccessfulDelivery:
    def test_sends_the_signed_envelope_and_records_the_attempt(self, org, webhook, receiver):
        published = publish(org, "person.created", {"name": "Zoë", "n": 1})
        assert deliver_due() == 1

        (received,) = receiver.to("/hook")
        envelope = json.loads(received.body)
        assert envelope == {
            "id": published.event.public_id,
            "type": "person.created",
            "timestamp": envelope["timestamp"],
            "organizationId": org.public_id,
            "webhookId": webhook.public_id,
            "data": {"name": "Zoë", "n": 1},
        }
        assert envelope["timestamp"].endswith("Z") and len(envelope["timestamp"]) == 24
        assert b"Zo\xc3\xab" in received.body  # UTF-8, not \u escapes
        assert b", " not in received.body and b": " not in received.body
        assert received.header("Content-Type") == "application/json"
        assert received.header("User-Agent").startswith("Herald-Webhooks/")
        assert received.header("webhook-id") == published.event.public_id
        assert abs(int(received.header("webhook-timestamp")) - time.time()) < 5
        assert verify_standard(received, webhook.secret)["data"] == {"name": "Zoë", "n": 1}

        delivery = only_delivery()
        assert delivery.status == Delivery.Status.SUCCEEDED
        assert delivery.attempts == 1 and delivery.last_status_code == 200
        assert delivery.completed_at is not None and leased_until(delivery.pk) is None
        attempt = DeliveryAttempt.objects.get()
        assert attempt.number == 1 and attempt.trigger == Trigger.AUTO
        assert attempt.response_status == 200 and attempt.response_body == "ok"
        assert attempt.request_body.encode() == received.body
        assert attempt.request_headers["webhook-id"] == published.event.public_id
        assert attempt.error_kind == ""
        assert delivery.last_latency_ms == attempt.duration_ms  # the log's latency column

        webhook.refresh_from_db()
        assert webhook.last_delivery_at is not None and webhook.consecutive_failures == 0

    def test_custom_headers_go_along(self, org, receiver):
        WebhookFactory(
            organization=org,
            url=receiver.url(),
            headers={"Authorization": "Token t", "X-Env": "prod"},
        )
        publish(org, "person.created", {})
        deliver_due()
        (received,) = receiver.requests
        assert received.header("Authorization") == "Token t" and received.header("X-Env") == "prod"

    def test_any_2xx_is_success(self, org, webhook, receiver):
        receiver.script("/hook", Answer(status=204, body=b""))
        publish(org, "person.created", {})
        deliver_due()
        assert only_delivery().status == Delivery.Status.SUCCEEDED


class TestFailuresAndRetries:
    def test_a_500_schedules_the_next_attempt_by_the_schedule(self, org, webhook, receiver):
        receiver.always("/hook", Answer(status=500, body=b"boom"))
        publish(org, "person.created", {})
        before = timezone.now()
        deliver_due()

        delivery = only_delivery()
        assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 1
        assert delivery.last_status_code == 500 and delivery.last_error_kind == "http_status"
        delay = (delivery.next_attempt_at - before).total_seconds()
        assert 4.5 <= delay <= 6  # the schedule's +5 s
        attempt = DeliveryAttempt.objects.get()
        assert attempt.error_kind == "http_status" and attempt.response_body == "boom"
        webhook.refresh_from_db()
        assert webhook.consecutive_failures == 1 and webhook.failing_since is not None

    def test_attempts_stop_at_max_attempts_and_the_delivery_fails(self, org, receiver, settings):
        settings.HERALD_RETRY_SCHEDULE = [0, 0.05]
        webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=3)
        receiver.always("/hook", Answer(status=503))
        published = publish(org, "person.created", {})
        deadline = time.monotonic() + 10
        while only_delivery().status == Delivery.Status.PENDING and time.monotonic() < deadline:
            deliver_due()
            time.sleep(0.06)

        delivery = only_delivery()
        assert delivery.status == Delivery.Status.FAILED and delivery.attempts == 3
        assert delivery.completed_at is not None
        assert list(delivery.attempt_set.values_list("number", flat=True).order_by("number")) == [
            1,
            2,
            3,
        ]
        requests = receiver.to("/hook")
        assert len(requests) == 3
        # The same id on every attempt; timestamp and signature made fresh each time.
        assert {r.header("webhook-id") for r in requests} == {published.event.public_id}
        for r in requests:
            verify_standard(r, webhook.secret)
        webhook.refresh_from_db()
        assert webhook.consecutive_failures == 3

    def test_a_success_resets_the_failure_streak(self, org, receiver, settings):
        settings.HERALD_RETRY_SCHEDULE = [0, 0]
        webhook = WebhookFactory(organization=org, url=receiver.url())
        receiver.script("/hook", Answer(status=500), Answer(status=500), Answer(status=200))
        publish(org, "person.created", {})
        for _ in range(3):
            deliver_due()
        webhook.refresh_from_db()
        assert only_delivery().status == Delivery.Status.SUCCEEDED
        assert webhook.consecutive_failures == 0 and webhook.failing_since is None

    @pytest.mark.parametrize("status", [429, 503])
    def test_retry_after_delays_the_next_attempt(self, org, webhook, receiver, status):
        receiver.script("/hook", Answer(status=status, headers={"Retry-After": "8"}))
        publish(org, "person.created", {})
        before = timezone.now()
        deliver_due()
        delay = (only_delivery().next_attempt_at - before).total_seconds()
        assert 7.5 <= delay <= 9

    def test_retry_after_is_capped_at_twice_the_scheduled_delay(self, org, webhook, receiver):
        receiver.script("/hook", Answer(status=429, headers={"Retry-After": "86400"}))
        publish(org, "person.created", {})
        before = timezone.now()
        deliver_due()
        delay = (only_delivery().next_attempt_at - before).total_seconds()
        assert 9.5 <= delay <= 11  # 2 × 5 s

    def test_410_gone_disables_the_webhook_and_ends_its_pending_deliveries(
        self, org, webhook, receiver
    ):
        receiver.script("/hook", Answer(status=410))
        publish(org, "person.created", {"first": True})
        in_flight = [dispatch.attempt(c) for c in dispatch.claim(10)]
        publish(org, "person.updated", {})  # waiting while the first was in flight
        recorded_at = timezone.now()
        dispatch.record(in_flight, now=recorded_at)
        assert DeliveryAttempt.objects.count() == 1
        # Both ended at the record's time: the one answered 410 and the one waiting.
        assert set(Delivery.objects.values_list("completed_at", flat=True)) == {recorded_at}

        webhook.refresh_from_db()
        assert webhook.status == Webhook.Status.DISABLED
        assert "410" in webhook.disabled_reason
        assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.FAILED}
        # While disabled, new events are not fanned out to it.
        assert publish(org, "person.deleted", {}).delivery_count == 0

    def test_redirects_are_failures_and_not_followed(self, org, webhook, receiver):
        receiver.script(
            "/hook", Answer(status=302, headers={"Location": receiver.url("/elsewhere")})
        )
        publish(org, "person.created", {})
        deliver_due()
        assert receiver.to("/elsewhere") == []
        delivery = only_delivery()
        assert delivery.status == Delivery.Status.PENDING and delivery.last_status_code == 302
        assert delivery.last_error_kind == "http_status"

    def test_a_receivers_cookie_never_comes_back(self, org, webhook, receiver):
        receiver.script("/hook", Answer(headers={"Set-Cookie": "session=abc; Path=/"}))
        publish(org, "person.created", {})
        deliver_due()
        publish(org, "person.updated", {})
        deliver_due()
        first, second = receiver.to("/hook")
        assert first.header("Cookie") is None and second.header("Cookie") is None

    def test_the_request_carries_its_headers_as_sent_before(self, org, webhook, receiver):
        publish(org, "person.created", {})
        deliver_due()
        (request,) = receiver.to("/hook")
        assert request.header("User-Agent").startswith("Herald-Webhooks/")
        assert request.header("Content-Type") == "application/json"
        assert request.header("Content-Length") == str(len(request.body))
        assert request.header("Accept-Encoding") == "gzip, deflate"

    def test_a_slow_receiver_is_a_timeout(self, org, receiver):
        WebhookFactory(organization=org, url=receiver.url(), timeout_seconds=1)
        receiver.script("/hook", Answer(delay=2.5))
        publish(org, "person.created", {})
        deliver_due()
        attempt = DeliveryAttempt.objects.get()
        assert attempt.error_kind == "timeout" and attempt.response_status is None
        assert 900 <= attempt.duration_ms < 2500

    def test_nothing_listening_is_a_connection_error(self, org, receiver):
        closed = receiver.url()
        receiver.close()
        WebhookFactory(organization=org, url=closed)
        publish(org, "person.created", {})
        deliver_due()
        attempt = DeliveryAttempt.objects.get()
        assert attempt.error_kind == "connection" and attempt.error_message

    def test_large_responses_are_read_up_to_64_kib_and_stored_up_to_4_kib(
        self, org, webhook, receiver
    ):
        receiver.script("/hook", Answer(status=200, body=b"a" * 200_000))
        publish(org, "person.created", {})
        deliver_due()
        attempt = DeliveryAttempt.objects.get()
        assert attempt.response_status == 200 and len(attempt.response_body) == 4096
        assert only_delivery().status == Delivery.Status.SUCCEEDED


class TestRecording:
    def test_the_stored_request_body_is_cut_at_the_limit_even_inside_a_character(
        self, org, webhook, receiver, settings
    ):
        publish(org, "person.created", {"name": "é" * 300})
        (result,) = [dispatch.attempt(c) for c in dispatch.claim(10)]
        body = result.request_body
        limit = body.index("é".encode()) + 3  # one é and half of the next
        settings.HERALD_REQUEST_STORE_BYTES = limit
        dispatch.record([result])
        stored = DeliveryAttempt.objects.get().request_body
        assert stored == body[: limit - 1].decode() + "\ufffd"
        assert stored.endswith("é\ufffd")

    def test_the_webhooks_last_delivery_is_its_latest_attempts_start(self, org, webhook, receiver):
        for n in range(3):
            publish(org, "person.created", {"n": n})
        results = [dispatch.attempt(c) for c in dispatch.claim(10)]
        now = timezone.now()
        for result, seconds_ago in zip(results, (5, 0, 9), strict=True):
            result.outcome.started_at = now - timedelta(seconds=seconds_ago)
        # Recorded in this order: a later start, then an earlier one (a
        # slower request) that must not move it back.
        for result in results:
            dispatch.record([result])
        webhook.refresh_from_db()
        assert webhook.last_delivery_at == now

    def test_a_failing_streak_keeps_the_start_of_its_first_failure(self, org, webhook, receiver):
        receiver.always("/hook", Answer(status=500))
        for n in range(2):
            publish(org, "person.created", {"n": n})
        first, second = [dispatch.attempt(c) for c in dispatch.claim(10)]
        dispatch.record([first])
        dispatch.record([second])  # the next batch, failing too
        webhook.refresh_from_db()
        assert webhook.consecutive_failures == 2
        assert webhook.failing_since == min(first.outcome.started_at, second.outcome.started_at)

    def test_a_lower_case_retry_after_is_heard_too(self, org, webhook, receiver):
        receiver.script("/hook", Answer(status=503, headers={"retry-after": "8"}))
        publish(org, "person.created", {})
        before = timezone.now()
        deliver_due()
        delay = (only_delivery().next_attempt_at - before).total_seconds()
        assert 7.5 <= delay <= 9

    def test_only_attempts_made_on_request_count_as_manual(self, org, receiver):
        WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        deliver_due()
        assert only_delivery().manual_attempts == 0
        actions.retry_delivery(only_delivery())
        assert only_delivery().next_trigger == Trigger.MANUAL
        deliver_due()
        delivery = only_delivery()
        assert (delivery.attempts, delivery.manual_attempts) == (2, 1)
        assert delivery.status == Delivery.Status.SUCCEEDED
        assert delivery.next_trigger == Trigger.AUTO  # the request was used up

    def test_a_record_frees_the_slot_and_wakes_the_lane_as_of_its_now(self, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url(), max_in_flight=1)
        publish(org, "person.created", {"n": 1})
        publish(org, "person.created", {"n": 2})
        (first,) = dispatch.claim(10)
        result = dispatch.attempt(first)
        now = timezone.now()
        dispatch.record([result], now=now)
        assert Lane.objects.get(webhook=webhook).due_at == now
        done = Delivery.objects.get(pk=first.delivery_id)
        assert (done.status, done.completed_at, leased_until(done.pk)) == ("succeeded", now, None)
        (second,) = dispatch.claim(10, now=now)
        assert second.delivery_id != first.delivery_id

    def test_the_last_delivery_time_is_the_latest_attempts_and_never_goes_back(
        self, org, webhook, receiver
    ):
        for i in range(3):
            publish(org, "person.created", {"i": i})
        claimed = sorted(dispatch.claim(10), key=lambda c: c.delivery_id)
        results = [dispatch.attempt(c) for c in claimed]
        latest = max(r.outcome.started_at for r in results)
        dispatch.record(results[1:])
        dispatch.record(results[:1])  # the earliest, recorded last
        webhook.refresh_from_db()
        assert webhook.last_delivery_at == latest

    def test_a_410_disables_the_webhook_saying_why(self, org, webhook, receiver):
        receiver.script("/hook", Answer(status=410))
        publish(org, "person.created", {})
        deliver_due()
        webhook.refresh_from_db()
        assert webhook.disabled_reason == (
            "The endpoint answered 410 Gone: it asked not to receive more deliveries."
        )

    def test_listeners_hear_of_retries_ended_by_a_webhook_disabled_mid_flight(
        self, org, webhook, receiver
    ):
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        results = [dispatch.attempt(c) for c in dispatch.claim(10)]
        actions.disable_webhook(webhook, reason="test")
        heard = []

        def listener(sender, batch, **kwargs):
            heard.append(batch)

        signals.attempts_recorded.connect(listener)
        try:
            now = timezone.now()
            dispatch.record(results, now=now)
        finally:
            signals.attempts_recorded.disconnect(listener)
        (batch,) = heard
        assert batch.failed_on_disabled == [webhook.pk] and batch.now == now
        assert [item.claimed for item in batch.attempts] == [r.claimed for r in results]
        delivery = only_delivery()
        assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
        assert delivery.completed_at == now


class TestTheRetrySchedule:
    def test_each_attempt_waits_its_place_in_the_schedule_and_the_last_delay_repeats(
        self, settings
    ):
        settings.HERALD_RETRY_SCHEDULE = [0, 5, 30]
        assert [retry.scheduled_delay(n) for n in range(1, 6)] == [0, 5, 30, 30, 30]
        # A schedule given overrides the setting.
        assert [retry.scheduled_delay(n, [1, 2]) for n in (1, 2, 3)] == [1, 2, 2]

    def test_jitter_spreads_a_delay_evenly_either_side(self):
        rng, same_draws = random.Random(7), random.Random(7)
        delays = [retry.with_jitter(10, 0.2, rng) for _ in range(50)]
        assert delays == [10 * (1 + same_draws.uniform(-0.2, 0.2)) for _ in range(50)]
        assert all(8 <= d <= 12 for d in delays)
        assert min(delays) < 9.5 and max(delays) > 10.5
        assert 0.5 <= retry.with_jitter(1, 0.5) <= 1.5
        assert retry.with_jitter(1, 0.5, random.Random(1)) != 1

    def test_retry_after_is_delta_seconds_or_an_http_date(self):
        now = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
        assert retry.parse_retry_after(" 120 ", now) == 120
        assert retry.parse_retry_after("Thu, 15 Jan 2026 12:00:30 GMT", now) == 30
        # A date already past means now; one without a zone, or no date, means nothing.
        assert retry.parse_retry_after("Thu, 15 Jan 2026 11:59:00 GMT", now) == 0
        assert retry.parse_retry_after("Thu, 15 Jan 2026 12:00:30 -0000", now) is None
        assert retry.parse_retry_after("soon", now) is None
        assert retry.parse_retry_after("", now) is None

    def test_nothing_to_wait_or_no_jitter_leaves_the_delay_as_it_is(self):
        assert retry.with_jitter(0, 0.5, random.Random(1)) == 0
        assert retry.with_jitter(-1, 0.5, random.Random(1)) == -1
        assert retry.with_jitter(5, 0, random.Random(1)) == 5


class TestTls:
    def test_an_untrusted_certificate_is_a_tls_error_when_verifying(self, org, tls_receiver):
        WebhookFactory(organization=org, url=tls_receiver.url(), verify_tls=True)
        publish(org, "person.created", {})
        deliver_due()
        attempt = DeliveryAttempt.objects.get()
        assert attempt.error_kind == "tls" and "certificate" in attempt.error_message.lower()
        assert tls_receiver.requests == []

    def test_verification_can_be_turned_off_per_webhook(self, org, tls_receiver):
        WebhookFactory(organization=org, url=tls_receiver.url(), verify_tls=False)
        publish(org, "person.created", {})
        deliver_due()
        assert only_delivery().status == Delivery.Status.SUCCEEDED
        assert len(tls_receiver.requests) == 1


class TestManualRetries:
    @pytest.fixture
    def failed_delivery(self, org, receiver):
        WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        deliver_due()
        delivery = only_delivery()
        assert delivery.status == Delivery.Status.FAILED
        return delivery

    def test_a_manual_retry_makes_one_attempt_and_success_marks_it_succeeded(
        self, failed_delivery, receiver
    ):
        actions.retry_delivery(failed_delivery)
        deliver_due()
        failed_delivery.refresh_from_db()
        assert failed_delivery.status == Delivery.Status.SUCCEEDED
        last = failed_delivery.attempt_set.order_by("number").last()
        assert last.number == 2 and last.trigger == Trigger.MANUAL
        assert len(receiver.requests) == 2

    def test_a_failed_manual_retry_leaves_it_failed_after_one_attempt(
        self, failed_delivery, receiver
    ):
        receiver.script("/hook", Answer(status=500))
        actions.retry_delivery(failed_delivery)
        deliver_due()
        deliver_due()
        failed_delivery.refresh_from_db()
        assert failed_delivery.status == Delivery.Status.FAILED and failed_delivery.attempts == 2

    def test_retry_all_failed_since_a_time(self, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500), Answer(status=500))
        publish(org, "person.created", {"n": 1})
        publish(org, "person.created", {"n": 2})
        deliver_due()
        old, new = Delivery.objects.order_by("id")
        Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

        assert actions.retry_failed(webhook, since=timezone.now() - timedelta(days=1)) == 1
        deliver_due()
        old.refresh_from_db()
        new.refresh_from_db()
        assert new.status == Delivery.Status.SUCCEEDED and old.status == Delivery.Status.FAILED
        assert actions.retry_failed(webhook) == 1


class TestPauseAndResume:
    def test_paused_webhooks_keep_deliveries_pending_and_send_them_when_resumed(
        self, org, webhook, receiver
    ):
        actions.pause_webhook(webhook)
        publish(org, "person.created", {})
        assert deliver_due() == 0 and receiver.requests == []
        assert only_delivery().status == Delivery.Status.PENDING

        actions.resume_webhook(webhook)
        assert deliver_due() == 1
        assert only_delivery().status == Delivery.Status.SUCCEEDED

    def test_pausing_parks_deliveries_already_waiting_for_a_retry(self, org, webhook, receiver):
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        deliver_due()
        actions.pause_webhook(webhook)
        assert only_delivery().next_attempt_at is None
        actions.resume_webhook(webhook)
        assert only_delivery().next_attempt_at <= timezone.now()


class TestSecretRotation:
    def test_both_secrets_sign_during_the_grace_period(self, org, webhook, receiver):
        old_secret = webhook.secret
        new_secret = webhook.rotate_secret(grace=timedelta(hours=1))
        webhook.save()
        publish(org, "person.created", {})
        deliver_due()
        (received,) = receiver.requests
        assert len(received.header("webhook-signature").split(" ")) == 2
        verify_standard(received, old_secret)
        verify_standard(received, new_secret)

    def test_only_the_new_secret_signs_after_the_grace_period(self, org, webhook, receiver):
        from standardwebhooks.webhooks import WebhookVerificationError

        old_secret = webhook.secret
        webhook.rotate_secret(grace=timedelta(hours=1))
        webhook.previous_secrets[0]["expires_at"] = (
            timezone.now() - timedelta(seconds=1)
        ).isoformat()
        webhook.save()
        publish(org, "person.created", {})
        deliver_due()
        (received,) = receiver.requests
        verify_standard(received, webhook.secret)
        with pytest.raises(WebhookVerificationError):
            verify_standard(received, old_secret)

    def test_at_most_ten_old_secrets_are_kept(self, webhook):
        for _ in range(15):
            webhook.rotate_secret()
        assert len(webhook.previous_secrets) == 10
        assert len(webhook.signing_secrets()) == 11


class TestClaims:
    def test_a_claimed_delivery_is_not_claimed_twice_until_its_lease_ends(self, org, webhook):
        publish(org, "person.created", {})
        (claimed,) = dispatch.claim(10)
        assert dispatch.claim(10) == []
        delivery = only_delivery()
        lease = (leased_until(delivery.pk) - timezone.now()).total_seconds()
        assert webhook.timeout_seconds < lease <= webhook.timeout_seconds + 31

        # The worker holding it died: once the lease runs out it is due again.
        Lease.objects.update(until=timezone.now() - timedelta(seconds=1))
        assert claiming.release_expired_claims() == 1
        (again,) = dispatch.claim(10)
        assert again.delivery_id == claimed.delivery_id and again.attempt_number == 1

    def test_deliveries_of_paused_webhooks_are_not_claimed(self, org, webhook):
        publish(org, "person.created", {})
        Webhook.objects.update(status=Webhook.Status.PAUSED)
        assert dispatch.claim(10) == []

    def test_a_retry_of_a_webhook_disabled_mid_flight_ends_failed(self, org, webhook, receiver):
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        claimed = dispatch.claim(10)
        results = [dispatch.attempt(c) for c in claimed]
        actions.disable_webhook(webhook, reason="test")
        dispatch.record(results)
        assert only_delivery().status == Delivery.Status.FAILED

    def test_many_requests_are_in_flight_at_once(self, org, receiver):
        WebhookFactory(organization=org, url=receiver.url())
        receiver.always("/hook", Answer(delay=0.3))
        for i in range(40):
            publish(org, "person.created", {"i": i})
        assert deliver_due(concurrency=20) == 40
        assert receiver.max_in_flight >= 10
        assert Delivery.objects.filter(status="succeeded").count() == 40


def test_counters_feed_success_rate_latency_and_failures(org, receiver, settings):
    webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
    receiver.script(
        "/hook", Answer(status=200), Answer(status=200), Answer(status=200), Answer(status=500)
    )
    for i in range(4):
        publish(org, "person.created", {"i": i})
    deliver_due(concurrency=1)

    stats = metrics.window_stats([webhook.pk], timezone.now() - timedelta(hours=1))[webhook.pk]
    assert stats.attempts == 4 and stats.succeeded_attempts == 3
    assert stats.success_rate == 0.75
    assert stats.failed_deliveries == 1 and stats.succeeded_deliveries == 3
    assert stats.avg_latency_ms is not None and stats.p95_latency_ms is not None
    assert WebhookStats.objects.filter(webhook=webhook).count() >= 1


def test_a_dispatcher_whose_time_is_up_returns_though_a_lane_is_overdue(org, webhook):
    publish(org, "person.created", {})
    Lane.objects.update(due_at=timezone.now() - timedelta(seconds=5))

    def too_long(signum, frame):
        raise TimeoutError("dispatch.run() did not return after its time was up")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        # The overdue lane is the next job's: this one's time is up.
        assert dispatch.run(max_seconds=0) == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert Delivery.objects.get().status == Delivery.Status.PENDING


def test_the_send_pool_hands_back_results_and_exceptions_like_an_executor():
    pool = dispatch.SendPool(2)
    assert pool.submit(lambda a, b=0: a + b, 1, b=2).result(timeout=5) == 3
    failing = pool.submit(int, "not a number")
    assert isinstance(failing.exception(timeout=5), ValueError)
    threads = list(pool._threads)
    pool.shutdown()
    assert threads and not any(thread.is_alive() for thread in threads)


class TestAWebhookDisabledWhileARequestIsInFlight:
    """The request in flight ends as it turns out, counted once: the
    disabling ends the other pending deliveries, the record this one."""

    def run_out_leases(self):
        Lease.objects.update(until=timezone.now() - timedelta(seconds=1))

    def figures(self, webhook):
        stats = metrics.window_stats([webhook.pk], timezone.now() - timedelta(hours=1))
        return stats[webhook.pk].failed_deliveries, stats[webhook.pk].succeeded_deliveries

    @pytest.mark.parametrize(
        "answer, status, figures",
        [(200, "succeeded", (1, 1)), (500, "failed", (2, 0))],
    )
    def test_it_ends_as_its_attempt_did_and_counts_once(
        self, org, webhook, receiver, answer, status, figures
    ):
        receiver.script("/hook", Answer(status=answer))
        publish(org, "person.created", {"n": 1})
        (in_flight,) = dispatch.claim(10)
        publish(org, "person.created", {"n": 2})  # waiting, not claimed
        assert actions.disable_webhook(webhook, reason="test") == 1
        assert Delivery.objects.get(pk=in_flight.delivery_id).status == "pending"
        dispatch.record([dispatch.attempt(in_flight)])
        assert Delivery.objects.get(pk=in_flight.delivery_id).status == status
        assert not Delivery.objects.filter(status="pending").exists()
        assert self.figures(webhook) == figures

    def test_a_lease_that_runs_out_ends_failed_once_and_wakes_nothing(self, org, webhook, receiver):
        publish(org, "person.created", {})
        (claimed,) = dispatch.claim(10)  # and its worker dies
        assert actions.disable_webhook(webhook, reason="test") == 0
        self.run_out_leases()
        before = timezone.now()
        heard = []

        def listener(sender, **kwargs):
            heard.append((sender, kwargs))

        signals.webhook_disabled.connect(listener)
        try:
            assert claiming.release_expired_claims(before) == 1
        finally:
            signals.webhook_disabled.disconnect(listener)
        # Announced as a webhook disabled already, with the one it ended.
        ((sender, told),) = heard
        assert sender is Webhook
        assert (told["webhook"].pk, told["reason"], told["now"]) == (webhook.pk, "test", before)
        assert (told["ended"], told["newly"]) == (1, False)
        delivery = only_delivery()
        assert (delivery.status, leased_until(delivery.pk), delivery.next_attempt_at) == (
            "failed",
            None,
            None,
        )
        assert delivery.completed_at == before
        assert self.figures(webhook) == (1, 0)
        assert Lane.objects.get(webhook=webhook).due_at is None
        # Another webhook's expired lease is released as before: due again.
        other = WebhookFactory(organization=org, url=receiver.url("/other"))
        publish(org, "person.created", {})
        dispatch.claim(10)
        self.run_out_leases()
        assert claiming.release_expired_claims() == 1
        released = Delivery.objects.get(webhook=other)
        assert (released.status, leased_until(released.pk)) == ("pending", None)
        assert self.figures(webhook) == (1, 0)
