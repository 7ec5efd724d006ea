"""The local demo: an organization, a user and webhooks pointed at the
bundled demo receiver (healthy, flaky, slow and down endpoints), and a stream
of plausible events."""

import random
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from deliveries.publishing import publish
from webhooks.models import ApiKey, Membership, Organization, Webhook

DEMO_ORG = "Demo Co"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
# An owner's address, so alert e-mails have someone to go to (make run prints
# them to the console: EMAIL_BACKEND).
DEMO_EMAIL = "demo@example.com"

# name, receiver path (None: nothing listens), patterns, extra fields
DEMO_WEBHOOKS = [
    ("Order service", "/healthy", ["order.*"], {}),
    (
        "CRM sync",
        "/healthy",
        ["person.*", "company.*"],
        {"signature_style": "hex", "signature_header": "X-Twig-Signature"},
    ),
    ("Analytics (flaky)", "/flaky", ["*"], {}),
    ("Search indexer (slow)", "/slow", ["person.*", "order.created"], {"timeout_seconds": 5}),
    ("Legacy ERP (down)", None, ["order.*"], {"max_attempts": 3}),
    # Herald's own reports (alerts, failing and disabled webhooks) land here.
    ("Ops channel", "/healthy", ["herald.*"], {}),
]

FIRST_NAMES = ["Ada", "Grace", "Linus", "Zoë", "Hiro", "Amara", "Mateo", "Ingrid"]
COMPANIES = ["Initech", "Globex", "Umbrella", "Hooli", "Stark Industries"]


@dataclass
class Seeded:
    organization: Organization
    created: bool
    api_key: str | None


@transaction.atomic
def seed(receiver_url: str) -> Seeded:
    """Create the demo organization once; later runs only point its webhooks
    at `receiver_url` again."""
    organization = Organization.objects.filter(name=DEMO_ORG).order_by("id").first()
    created = organization is None
    api_key = None
    if created:
        organization = Organization.objects.create(name=DEMO_ORG)
        _, api_key = ApiKey.issue(organization, name="demo")
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USER)
    user.set_password(DEMO_PASSWORD)
    user.email = DEMO_EMAIL
    # Staff, so the demo can also look around Django's admin.
    user.is_staff = user.is_superuser = True
    user.save()
    Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": Membership.Role.OWNER}
    )
    for name, path, patterns, extra in DEMO_WEBHOOKS:
        # Port 9 (discard) has no listener here: connection refused.
        url = f"{receiver_url.rstrip('/')}{path}" if path else "http://127.0.0.1:9/webhooks"
        Webhook.objects.update_or_create(
            organization=organization,
            name=name,
            defaults={"url": url, "event_patterns": patterns, **extra},
        )
    return Seeded(organization, created, api_key)


def random_event(rng: random.Random = random) -> tuple[str, dict]:
    kind = rng.choice(["person", "person", "order", "order", "order", "company"])
    ident = secrets.token_hex(4)
    if kind == "person":
        name = rng.choice(FIRST_NAMES)
        return rng.choice(["person.created", "person.updated"]), {
            "person": {"id": f"per_{ident}", "name": name, "email": f"{name.lower()}@example.com"}
        }
    if kind == "order":
        return rng.choice(["order.created", "order.paid", "order.shipped"]), {
            "order": {
                "id": f"ord_{ident}",
                "amount": round(rng.uniform(5, 500), 2),
                "currency": "EUR",
                "items": rng.randint(1, 5),
            }
        }
    return "company.updated", {"company": {"id": f"com_{ident}", "name": rng.choice(COMPANIES)}}


def publish_random(organization: Organization) -> str:
    event_type, data = random_event()
    return publish(organization, event_type, data).event.public_id
