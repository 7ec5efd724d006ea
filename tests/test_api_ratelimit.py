"""Per-API-key rate limiting (webhooks/ratelimit.py): a sliding window in
Redis, 429 with Retry-After in the error envelope, and an API that keeps
working when Redis does not."""

import logging

import pytest
import redis

from api import ratelimit
from tests.conftest import ApiClient, error_of
from tests.factories import OrganizationFactory, api_key_for
from webhooks.models import Webhook

WEBHOOKS = "/api/v1/webhooks"


@pytest.fixture
def tiny_limit(settings, redis_conn, monkeypatch):
    settings.HERALD_API_RATE_LIMIT = 3
    settings.HERALD_API_RATE_WINDOW_SECONDS = 60
    # Whatever an earlier test did to Redis, ask it.
    monkeypatch.setattr(ratelimit, "_redis_skipped_until", 0.0)
    return 3


def test_answers_say_how_many_requests_are_left(api, tiny_limit):
    remaining = []
    for _ in range(3):
        response = api.get(WEBHOOKS)
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        remaining.append(int(response["X-RateLimit-Remaining"]))

    assert remaining[0] <= 2
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == 0


def test_over_the_limit_is_429_with_retry_after(api, tiny_limit):
    for _ in range(3):
        assert api.get(WEBHOOKS).status_code == 200

    response = api.get(WEBHOOKS)

    error = error_of(response, 429, code="rate_limited")
    assert "3 requests" in error["message"]
    assert 1 <= int(response["Retry-After"]) <= 120
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "0"


def test_a_refused_request_does_nothing(api, tiny_limit):
    for _ in range(3):
        api.get(WEBHOOKS)

    response = api.post(WEBHOOKS, {"url": "https://example.com/h", "events": ["*"]})

    error_of(response, 429, code="rate_limited")
    assert not Webhook.objects.exists()


def test_every_management_operation_counts_against_the_same_key(api, tiny_limit, org):
    api.get(WEBHOOKS)
    api.get("/api/v1/alerts")
    api.get("/api/v1/deliveries")

    error_of(api.get("/api/v1/events/evt_x"), 429, code="rate_limited")


def test_publishing_has_a_limit_of_its_own(api, tiny_limit, settings):
    settings.HERALD_API_PUBLISH_RATE_LIMIT = 2
    for _ in range(3):
        api.get(WEBHOOKS)  # the management limit used up
    event = {"type": "person.created", "data": {}}
    first = api.post("/api/v1/events", event)
    assert first.status_code == 202
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("2", "1")
    batch = api.post("/api/v1/events/batch", {"events": [event, event]})
    assert batch.status_code == 202 and batch["X-RateLimit-Remaining"] == "0"
    error_of(api.post("/api/v1/events", event), 429, code="rate_limited")
    error_of(api.get(WEBHOOKS), 429, code="rate_limited")


def test_each_key_has_its_own_limit(client, api, tiny_limit, org):
    for _ in range(4):
        api.get(WEBHOOKS)
    error_of(api.get(WEBHOOKS), 429)

    second_key = ApiClient(client, api_key_for(org))
    other_org = ApiClient(client, api_key_for(OrganizationFactory()))

    assert second_key.get(WEBHOOKS).status_code == 200
    assert other_org.get(WEBHOOKS).status_code == 200


def test_requests_without_a_valid_key_are_401_not_counted(client, api, tiny_limit):
    for _ in range(5):
        response = client.get(WEBHOOKS, headers={"Authorization": "Bearer hk_unknown"})
        error_of(response, 401, code="unauthorized")

    assert api.get(WEBHOOKS).status_code == 200


def test_a_limit_of_zero_turns_limiting_off(api, settings, redis_conn):
    settings.HERALD_API_RATE_LIMIT = 0

    responses = [api.get(WEBHOOKS) for _ in range(5)]

    assert [r.status_code for r in responses] == [200] * 5
    assert "X-RateLimit-Limit" not in responses[0]
    assert not redis_conn.keys(ratelimit.KEY_PREFIX + "*")


def test_the_window_slides(tiny_limit, redis_conn, db):
    key, window = "key_sliding", 60
    start = 1_000_000 * window  # the start of a window
    for second in (1, 2, 3):
        ratelimit.hit(key, now=start + second)
    with pytest.raises(ratelimit.RateLimited) as refused:
        ratelimit.hit(key, now=start + 4)
    # The three requests count until enough of them slide out of the last
    # minute: at 59 s into the next window, 3 * 1/60 of them still count.
    assert refused.value.retry_after == pytest.approx(window - 4 + window * 1 / 3, abs=1)

    with pytest.raises(ratelimit.RateLimited):
        ratelimit.hit(key, now=start + window + 1)  # 3 * 59/60 still count
    quota = ratelimit.hit(key, now=start + window + 41)  # only 3 * 19/60 still count
    assert quota.limit == 3
    assert ratelimit.hit(key, now=start + 2 * window + 1).remaining >= 1


def test_retry_after_is_when_the_next_request_fits():
    window, limit = 60, 10
    # Full this window: wait for the next one, then for this one to slide.
    assert ratelimit.retry_after(limit, window, 30.0, previous=0, current=10) == 30 + 6
    # Room this window once enough of the previous one slides out:
    # 10 * (60 - t) / 60 + 5 + 1 <= 10  ⇒  t >= 36.
    assert ratelimit.retry_after(limit, window, 30.0, previous=10, current=5) == 6
    assert ratelimit.retry_after(limit, window, 59.9, previous=10, current=9) >= 1


def test_the_counters_expire(tiny_limit, redis_conn, db):
    ratelimit.hit("key_expiry")

    keys = redis_conn.keys(ratelimit.KEY_PREFIX + "key_expiry:*")
    assert len(keys) == 1
    assert 0 < redis_conn.ttl(keys[0]) <= 2 * 60 + 1


def test_concurrent_requests_never_exceed_the_limit(tiny_limit, redis_conn, db, settings):
    from concurrent.futures import ThreadPoolExecutor

    settings.HERALD_API_RATE_LIMIT = 20

    def attempt(_):
        try:
            ratelimit.hit("key_race", now=1_000_000 * 60 + 30)
            return True
        except ratelimit.RateLimited:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(60)))

    assert results.count(True) == 20


@pytest.fixture
def redis_down(monkeypatch):
    calls = []

    class DownRedis:
        def register_script(self, script):
            def run(*args, **kwargs):
                calls.append(1)
                raise redis.ConnectionError("Redis is down")

            return run

    monkeypatch.setattr(ratelimit, "_connection", DownRedis)
    monkeypatch.setattr(ratelimit, "_last_failure_logged", 0.0)
    monkeypatch.setattr(ratelimit, "_redis_skipped_until", 0.0)
    return calls


def test_the_api_keeps_working_when_redis_is_down(api, tiny_limit, redis_down, caplog):
    with caplog.at_level(logging.WARNING, logger="api.ratelimit"):
        responses = [api.get(WEBHOOKS) for _ in range(6)]

    assert [r.status_code for r in responses] == [200] * 6
    assert "X-RateLimit-Limit" not in responses[0]
    warnings = [r for r in caplog.records if "rate limit not applied" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per request
    # Redis is left alone for a while rather than asked (and waited for) each time.
    assert len(redis_down) == 1


def test_redis_is_tried_again_after_a_while(api, tiny_limit, redis_down, monkeypatch):
    api.get(WEBHOOKS)
    monkeypatch.setattr(ratelimit, "_redis_skipped_until", 0.0)  # the pause is over

    api.get(WEBHOOKS)

    assert len(redis_down) == 2


def test_the_api_keeps_working_against_a_real_unreachable_redis(api, tiny_limit, monkeypatch):
    # Nothing listens on port 9 of the loopback: connecting fails at once.
    unreachable = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=1, retry=None)
    monkeypatch.setattr(ratelimit, "_connection", lambda: unreachable)
    monkeypatch.setattr(ratelimit, "_redis_skipped_until", 0.0)

    assert api.get(WEBHOOKS).status_code == 200


def test_the_429_is_in_the_openapi_schema_with_retry_after(client, db):
    schema = client.get("/api/openapi.json").json()

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "429" in responses, (method, path)
            assert "Retry-After" in responses["429"]["headers"]
            assert responses["429"]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorOut"
            )
