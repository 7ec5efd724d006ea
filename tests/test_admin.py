"""Every model is registered in Django's admin, and its pages open."""

import pytest
from django.contrib import admin
from django.urls import reverse

from deliveries.models import Delivery, Event
from deliveries.publishing import publish
from tests.conftest import deliver_due
from tests.factories import UserFactory


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_every_model_has_a_working_admin(staff_client, org, webhook, receiver):
    publish(org, "person.created", {"x": "<script>alert(1)</script>"})
    deliver_due()
    for model in admin.site._registry:
        meta = model._meta
        if meta.app_label not in ("webhooks", "deliveries", "monitoring"):
            continue
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert staff_client.get(changelist).status_code == 200, changelist
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert staff_client.get(change).status_code == 200, change


def test_event_payloads_are_escaped(staff_client, org, webhook):
    event = publish(org, "person.created", {"x": "<script>alert(1)</script>"}).event
    page = staff_client.get(reverse("admin:deliveries_event_change", args=[event.pk]))
    assert b"<script>alert(1)</script>" not in page.content
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1
