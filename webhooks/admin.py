from django.contrib import admin
from django.db import models

from webhooks.models import ApiKey, EventType, Membership, Organization, Webhook


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "created_at"]
    search_fields = ["name", "public_id"]
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "organization", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization"]
    readonly_fields = ["public_id", "prefix", "key_hash", "created_at", "last_used_at"]
    search_fields = ["prefix", "name"]

    def has_add_permission(self, request):
        # Keys are issued by `createapikey` or the dashboard, which show the raw key once.
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "public_id",
        "organization",
        "status",
        "max_in_flight",
        "rate_limit",
        "ordered",
        "consecutive_failures",
        "last_delivery_at",
    ]
    list_filter = ["status", "organization"]
    search_fields = ["name", "url", "public_id"]
    readonly_fields = [
        "public_id",
        "consecutive_failures",
        "failing_since",
        "consecutive_failed_deliveries",
        "failed_deliveries_since",
        "last_delivery_at",
        "created_at",
        "updated_at",
    ]
    exclude = ["secret", "previous_secrets"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "description", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]
