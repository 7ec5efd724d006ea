from datetime import datetime

import factory
from django.contrib.auth import get_user_model

from deliveries.models import Delivery, Lease
from webhooks.models import ApiKey, Membership, Organization, Webhook


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(user, create, extracted, **kwargs):
        if create:
            user.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ADMIN


class WebhookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Webhook

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Hook {n}")
    url = "http://127.0.0.1:9/hook"
    event_patterns = factory.LazyFunction(lambda: ["*"])
    timeout_seconds = 5


def api_key_for(organization: Organization) -> str:
    _, raw_key = ApiKey.issue(organization, name="tests")
    return raw_key


def lease(delivery_id: int, until: datetime) -> None:
    """A worker holds the delivery until `until` (as a claim would leave it)."""
    delivery = Delivery.objects.get(pk=delivery_id)
    Lease.objects.update_or_create(
        delivery=delivery, defaults={"webhook_id": delivery.webhook_id, "until": until}
    )


def leased_until(delivery_id: int) -> datetime | None:
    """When the delivery's lease runs out; None when no worker holds it."""
    return Lease.objects.filter(delivery_id=delivery_id).values_list("until", flat=True).first()
