"""Receivers written exactly as the source documents tell their readers accept
Herald's deliveries (SPEC §3-§4, shared/seeds).

Every test makes a real delivery: a webhook pointing at a loopback receiver,
an event published, the dispatcher run in this process, and the request the
receiver recorded (headers and raw body bytes) handed to a verifier:

- the independent `standardwebhooks` package, for every signature style and
  during a secret rotation;
- the documents' own recipes: the Node.js ones copied into tests/recipes/*.js
  and run with `node` (an Express stand-in feeds them the request), the
  Python ones copied below.
"""

import hashlib
import hmac
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from deliveries.models import Delivery
from deliveries.publishing import publish
from tests.conftest import deliver_due
from tests.factories import WebhookFactory
from tests.receiver import Received
from webhooks.models import new_signing_secret

RECIPES = Path(__file__).parent / "recipes"

# Everything JSON can carry that JSON.stringify(JSON.parse(body)) writes back
# byte for byte (SPEC §3): non-ASCII text (accented, CJK, emoji incl. a ZWJ
# sequence), escapes, nesting, arrays, booleans, null, integers up to 2^53 - 1
# and non-integral floats.
DATA = {
    "operation": "person.updated",
    "record": {
        "id": 42,
        "name": "Zoë Ångström",
        "city": "東京",
        "note": "日本語のテキスト ✓ 🚀 👩‍💻",
        "tags": ["vip", "émigré", "🎉", ""],
        "active": True,
        "deleted": False,
        "manager": None,
        "score": 98.6,
        "ratio": -0.125,
        "balance": 1234567.89,
        "precise": 0.1,
        "third": 1 / 3,
        "largest_safe_integer": 9007199254740991,
        "negative": -17,
        "zero": 0,
    },
    "previousRecord": {
        "name": "Zoe",
        "nested": {"deep": {"list": [1, 2.5, [True, None, "x"], {}], "empty": []}},
    },
    "text": 'quote " backslash \\ slash / tab \t newline \n control \u0001 del \x7f '
    "line separator \u2028 <b>&amp;</b>",
}

TAMPER_FROM = b'"active":true'
TAMPER_TO = b'"active":false'


# --- Delivering ---------------------------------------------------------------


def make_webhook(org, receiver, style: str = "", header: str = "X-Webhook-Signature"):
    return WebhookFactory(
        organization=org,
        url=receiver.url("/hook"),
        signature_style=style,
        signature_header=header,
    )


def deliver(org, receiver, data=DATA, event_type: str = "person.updated") -> Received:
    """Publish one event to the organization's single webhook, run the
    dispatcher, and return the request the receiver got."""
    publish(org, event_type, data)
    assert deliver_due() == 1
    (request,) = receiver.to("/hook")
    assert Delivery.objects.get().status == Delivery.Status.SUCCEEDED
    return request


def deliver_to_new_webhook(org, receiver, style: str = "", header: str = "X-Webhook-Signature"):
    webhook = make_webhook(org, receiver, style, header)
    return webhook, deliver(org, receiver)


def tampered(body: bytes) -> bytes:
    assert TAMPER_FROM in body
    return body.replace(TAMPER_FROM, TAMPER_TO)


# --- Running the Node.js recipes ---------------------------------------------


def node_recipe(
    script: str,
    body: bytes,
    headers: dict[str, str],
    secret: str,
    *args: str,
    now: float | None = None,
) -> int:
    """Run a recipe from tests/recipes on a request; returns the HTTP status
    its route handler answered (exit status 0 exactly when it is 2xx)."""
    document = {
        "body": body.decode("utf-8"),
        "headers": headers,
        "secret": secret,
        "now": None if now is None else int(now * 1000),
    }
    proc = subprocess.run(
        ["node", str(RECIPES / script), *args],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=RECIPES,
    )
    statuses = re.findall(r"^HTTP (\d{3})$", proc.stdout, flags=re.MULTILINE)
    assert statuses, f"{script} did not answer:\n{proc.stdout}\n{proc.stderr}"
    status = int(statuses[-1])
    assert proc.returncode == (0 if 200 <= status < 300 else 1), proc.stderr
    assert status != 500, f"{script} crashed:\n{proc.stderr}"
    return status


def restringified(body: bytes) -> bytes:
    """JSON.stringify(JSON.parse(body)), computed by node."""
    proc = subprocess.run(
        ["node", str(RECIPES / "restringify.js")],
        input=body,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return proc.stdout


# --- The Python recipes, as printed --------------------------------------------


# 000 (Twig), "Python/Flask": `payload = request.get_data()` (the raw body),
# `signature = request.headers.get('X-Twig-Signature')`.
def verify_signature_000(payload, signature):
    secret = os.environ["WEBHOOK_SECRET"].encode()
    expected = hmac.new(secret, payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)


# 001 (TwaBot), "How to verify (Python example)": called with `request.json`.
def verify_signature_001(payload, signature, secret):
    expected = hmac.new(
        secret.encode("utf-8"), json.dumps(payload).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(signature, expected)


# 001 (TwaBot), "How to verify (PHP example)", in Python:
# `$payload = file_get_contents('php://input'); hash_hmac('sha256', $payload, $secret)`.
def verify_signature_001_php(payload, signature, secret):
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


# 003 (Twenty), "Verify Signature (Python)": called with the parsed body.
def verify_webhook_signature_003(payload, signature, secret, timestamp):
    # Reject old requests
    current_time = int(time.time())
    if current_time - int(timestamp) > 300:  # 5 minutes
        return False
    # Compute expected signature
    signed_payload = f"{timestamp}.{json.dumps(payload)}"
    expected_signature = hmac.new(
        secret.encode("utf-8"), signed_payload.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    # Compare signatures
    return hmac.compare_digest(signature, f"sha256={expected_signature}")


# The same, adapted to the raw body (`request.get_data()`): the one change is
# the signed payload's second half.
def verify_webhook_signature_003_raw(payload, signature, secret, timestamp):
    # Reject old requests
    current_time = int(time.time())
    if current_time - int(timestamp) > 300:  # 5 minutes
        return False
    # Compute expected signature
    signed_payload = f"{timestamp}.{payload.decode('utf-8')}"
    expected_signature = hmac.new(
        secret.encode("utf-8"), signed_payload.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    # Compare signatures
    return hmac.compare_digest(signature, f"sha256={expected_signature}")


# --- Standard Webhooks ----------------------------------------------------------

STYLES = [
    pytest.param("", "X-Webhook-Signature", id="standard-only"),
    pytest.param("hex", "X-Twig-Signature", id="hex-000-twig"),
    pytest.param("hex", "X-TwaBot-Signature", id="hex-001-twabot"),
    pytest.param("hex", "X-Webhook-Signature", id="hex-002-agent"),
    pytest.param("timestamped", "X-Twenty-Signature", id="timestamped-003-twenty"),
    pytest.param("timestamped-ms", "X-Twenty-Webhook-Signature", id="timestamped-ms-004"),
]


@pytest.mark.parametrize(("style", "header"), STYLES)
def test_standard_webhooks_package_verifies_every_style(org, receiver, style, header):
    """Whatever compatibility signature a webhook adds, the Standard Webhooks
    headers are there and the reference package verifies them unchanged; the
    verified body is the envelope around the published data."""
    webhook, request = deliver_to_new_webhook(org, receiver, style, header)

    envelope = StandardWebhook(webhook.secret).verify(request.body, request.headers)

    assert request.header("webhook-id") == envelope["id"]
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]+=*", request.header("webhook-signature"))
    assert envelope["type"] == "person.updated"
    assert envelope["organizationId"] == org.public_id
    assert envelope["webhookId"] == webhook.public_id
    assert envelope["data"] == DATA
    assert request.header("Content-Type") == "application/json"


@pytest.mark.parametrize(("style", "header"), STYLES)
def test_standard_webhooks_package_rejects_tampered_body_or_wrong_secret(
    org, receiver, style, header
):
    webhook, request = deliver_to_new_webhook(org, receiver, style, header)

    with pytest.raises(WebhookVerificationError):
        StandardWebhook(webhook.secret).verify(tampered(request.body), request.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(new_signing_secret()).verify(request.body, request.headers)


# The recipe reading each compatibility header.
COMPAT_RECIPES = {
    "X-Twig-Signature": "recipe_000_twig.js",
    "X-TwaBot-Signature": "recipe_001_twabot.js",
    "X-Webhook-Signature": "recipe_002_agent.js",
    "X-Twenty-Signature": "recipe_003_twenty.js",
    "X-Twenty-Webhook-Signature": "recipe_004_twenty_older.js",
}


@pytest.mark.parametrize(("style", "header"), STYLES)
def test_during_rotation_old_and_new_secret_both_verify_the_standard_header(
    org, receiver, style, header
):
    """After a rotation, inside the grace period, `webhook-signature` carries
    two signatures, and a receiver holding either secret verifies it. The
    compatibility signature stays a single one, by the new secret."""
    webhook = make_webhook(org, receiver, style, header)
    old_secret = webhook.secret
    new_secret = webhook.rotate_secret()
    webhook.save()
    assert new_secret != old_secret

    request = deliver(org, receiver)

    assert len(request.header("webhook-signature").split(" ")) == 2
    for secret in (new_secret, old_secret):
        assert StandardWebhook(secret).verify(request.body, request.headers)["data"] == DATA
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(new_signing_secret()).verify(request.body, request.headers)

    if style:
        script = COMPAT_RECIPES[header]
        assert node_recipe(script, request.body, request.headers, new_secret) == 200
        assert node_recipe(script, request.body, request.headers, old_secret) == 401


# --- The body -------------------------------------------------------------------


def test_body_is_exactly_what_json_stringify_writes_back(org, receiver):
    """SPEC §3: compact JSON, non-ASCII as UTF-8, so a receiver that parses
    the body and re-serialises it with JSON.stringify (001-004's Node
    recipes) gets the very bytes that were signed."""
    _, request = deliver_to_new_webhook(org, receiver)

    for text in ("Zoë", "日本語", "🚀", "\u2028"):
        assert text.encode() in request.body
    assert b'"active":true,"deleted":false,"manager":null' in request.body
    assert restringified(request.body) == request.body


def test_small_non_integral_floats_survive_json_stringify(org, receiver):
    webhook = make_webhook(org, receiver, "hex", "X-TwaBot-Signature")
    request = deliver(
        org,
        receiver,
        data={"tiny": 0.00001, "small": 2.5e-7, "smaller": 1.23e-12, "ok": 0.5, "neg": -3e-5},
    )

    assert restringified(request.body) == request.body
    assert node_recipe("recipe_001_twabot.js", request.body, request.headers, webhook.secret) == 200


# --- Node.js recipes ------------------------------------------------------------

NODE_RECIPES = [
    pytest.param("recipe_000_twig.js", "hex", "X-Twig-Signature", id="000-twig"),
    pytest.param("recipe_001_twabot.js", "hex", "X-TwaBot-Signature", id="001-twabot"),
    pytest.param("recipe_002_agent.js", "hex", "X-Webhook-Signature", id="002-agent"),
    pytest.param("recipe_003_twenty.js", "timestamped", "X-Twenty-Signature", id="003-twenty"),
    pytest.param(
        "recipe_004_twenty_older.js",
        "timestamped-ms",
        "X-Twenty-Webhook-Signature",
        id="004-twenty-older",
    ),
]


@pytest.mark.parametrize(("script", "style", "header"), NODE_RECIPES)
def test_node_recipe_accepts_the_delivery(org, receiver, script, style, header):
    """The document's Node.js receiver, given the webhook's secret, answers 2xx."""
    webhook, request = deliver_to_new_webhook(org, receiver, style, header)

    assert node_recipe(script, request.body, request.headers, webhook.secret) == 200


@pytest.mark.parametrize(("script", "style", "header"), NODE_RECIPES)
def test_node_recipe_rejects_a_tampered_body(org, receiver, script, style, header):
    webhook, request = deliver_to_new_webhook(org, receiver, style, header)

    assert node_recipe(script, tampered(request.body), request.headers, webhook.secret) == 401


@pytest.mark.parametrize(("script", "style", "header"), NODE_RECIPES)
def test_node_recipe_rejects_the_wrong_secret(org, receiver, script, style, header):
    _, request = deliver_to_new_webhook(org, receiver, style, header)

    assert node_recipe(script, request.body, request.headers, new_signing_secret()) == 401


def test_000_hex_signature_is_hmac_of_the_raw_body_keyed_with_the_whole_secret(org, receiver):
    webhook, request = deliver_to_new_webhook(org, receiver, "hex", "X-Twig-Signature")

    expected = hmac.new(webhook.secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Twig-Signature") == expected


def test_003_timestamp_header_is_unix_seconds_of_the_attempt(org, receiver):
    _, request = deliver_to_new_webhook(org, receiver, "timestamped", "X-Twenty-Signature")

    timestamp = request.header("X-Twenty-Timestamp")
    assert re.fullmatch(r"\d{10}", timestamp)
    assert abs(int(timestamp) - request.at) < 5
    assert request.header("X-Twenty-Signature").startswith("sha256=")


def test_003_node_recipe_accepts_for_five_minutes_then_rejects_as_a_replay(org, receiver):
    """003's replay check: `currentTime - timestamp > 300` rejects."""
    webhook, request = deliver_to_new_webhook(org, receiver, "timestamped", "X-Twenty-Signature")
    sent_at = int(request.header("X-Twenty-Timestamp"))

    def status_at(now: float) -> int:
        return node_recipe(
            "recipe_003_twenty.js", request.body, request.headers, webhook.secret, now=now
        )

    assert status_at(sent_at + 300) == 200
    assert status_at(sent_at + 301) == 401


def test_004_timestamp_header_is_unix_milliseconds_of_the_attempt(org, receiver):
    _, request = deliver_to_new_webhook(
        org, receiver, "timestamped-ms", "X-Twenty-Webhook-Signature"
    )

    timestamp = request.header("X-Twenty-Webhook-Timestamp")
    assert re.fullmatch(r"\d{13}", timestamp)
    assert abs(int(timestamp) / 1000 - request.at) < 5
    assert int(timestamp) // 1000 == int(request.header("webhook-timestamp"))
    assert re.fullmatch(r"[0-9a-f]{64}", request.header("X-Twenty-Webhook-Signature"))


def test_004_code_sample_taken_literally_stringifies_twice_and_rejects(org, receiver):
    """Documents the slip in 004's code sample (`JSON.stringify` of an already
    stringified payload): Herald follows the numbered steps, so only the
    steps verify."""
    webhook, request = deliver_to_new_webhook(
        org, receiver, "timestamped-ms", "X-Twenty-Webhook-Signature"
    )
    script = "recipe_004_twenty_older.js"

    assert node_recipe(script, request.body, request.headers, webhook.secret) == 200
    assert node_recipe(script, request.body, request.headers, webhook.secret, "--as-sample") == 401


# --- Python recipes -------------------------------------------------------------


def test_000_python_flask_recipe_accepts_the_delivery(org, receiver, monkeypatch):
    webhook, request = deliver_to_new_webhook(org, receiver, "hex", "X-Twig-Signature")
    monkeypatch.setenv("WEBHOOK_SECRET", webhook.secret)

    signature = request.header("X-Twig-Signature")
    payload = request.body
    assert verify_signature_000(payload, signature)
    assert json.loads(payload)["data"] == DATA


def test_000_python_flask_recipe_rejects_tampered_body_or_wrong_secret(org, receiver, monkeypatch):
    webhook, request = deliver_to_new_webhook(org, receiver, "hex", "X-Twig-Signature")
    signature = request.header("X-Twig-Signature")

    monkeypatch.setenv("WEBHOOK_SECRET", webhook.secret)
    assert not verify_signature_000(tampered(request.body), signature)
    monkeypatch.setenv("WEBHOOK_SECRET", new_signing_secret())
    assert not verify_signature_000(request.body, signature)


def test_001_php_recipe_on_the_raw_body_accepts_the_delivery(org, receiver):
    webhook, request = deliver_to_new_webhook(org, receiver, "hex", "X-TwaBot-Signature")
    signature = request.header("X-TwaBot-Signature")

    assert verify_signature_001_php(request.body, signature, webhook.secret)
    assert not verify_signature_001_php(tampered(request.body), signature, webhook.secret)
    assert not verify_signature_001_php(request.body, signature, new_signing_secret())


def test_001_python_recipe_as_printed_cannot_match_compact_json(org, receiver):
    """Documents shared/seeds/README.md: 001's Python snippet re-serialises
    the parsed body with json.dumps defaults (", " and ": " separators, \\u
    escapes), which is not the compact UTF-8 body that was signed; 001's own
    PHP snippet, on the raw body, verifies."""
    webhook, request = deliver_to_new_webhook(org, receiver, "hex", "X-TwaBot-Signature")
    signature = request.header("X-TwaBot-Signature")

    assert json.dumps(json.loads(request.body)).encode() != request.body
    assert not verify_signature_001(json.loads(request.body), signature, webhook.secret)
    assert verify_signature_001_php(request.body, signature, webhook.secret)


def test_003_python_recipe_on_the_raw_body_accepts_the_delivery(org, receiver):
    webhook, request = deliver_to_new_webhook(org, receiver, "timestamped", "X-Twenty-Signature")
    signature = request.header("X-Twenty-Signature")
    timestamp = request.header("X-Twenty-Timestamp")

    assert verify_webhook_signature_003_raw(request.body, signature, webhook.secret, timestamp)


def test_003_python_recipe_on_the_raw_body_rejects_tampered_body_or_wrong_secret(org, receiver):
    webhook, request = deliver_to_new_webhook(org, receiver, "timestamped", "X-Twenty-Signature")
    signature = request.header("X-Twenty-Signature")
    timestamp = request.header("X-Twenty-Timestamp")

    assert not verify_webhook_signature_003_raw(
        tampered(request.body), signature, webhook.secret, timestamp
    )
    assert not verify_webhook_signature_003_raw(
        request.body, signature, new_signing_secret(), timestamp
    )


def test_003_python_recipe_as_printed_cannot_match_compact_json(org, receiver):
    """Documents shared/seeds/README.md: 003's Python snippet signs
    `json.dumps(payload)` of the parsed body (spaced separators, ASCII
    escapes), so it rejects the compact UTF-8 body Herald signs, while the
    same function on the raw body accepts it."""
    webhook, request = deliver_to_new_webhook(org, receiver, "timestamped", "X-Twenty-Signature")
    signature = request.header("X-Twenty-Signature")
    timestamp = request.header("X-Twenty-Timestamp")
    payload = json.loads(request.body)

    assert json.dumps(payload).encode() != request.body
    assert not verify_webhook_signature_003(payload, signature, webhook.secret, timestamp)
    assert verify_webhook_signature_003_raw(request.body, signature, webhook.secret, timestamp)
