from django.contrib import admin

from deliveries.models import Delivery, DeliveryAttempt, Event, Lane, Lease


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    fields = ["public_id", "webhook", "status", "attempts", "last_status_code", "next_attempt_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["public_id", "type", "organization", "created_at", "delivery_count"]
    list_filter = ["organization"]
    search_fields = ["public_id", "type", "idempotency_key"]
    readonly_fields = [
        "public_id",
        "organization",
        "type",
        "data_json",
        "created_at",
        "idempotency_key",
        "delivery_count",
    ]
    inlines = [DeliveryInline]
    show_full_result_count = False


class AttemptInline(admin.StackedInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in DeliveryAttempt._meta.fields if f.name != "id"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "event_type",
        "webhook",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["public_id", "event__public_id"]
    raw_id_fields = ["event", "webhook", "organization"]
    readonly_fields = [
        "public_id",
        "attempts",
        "leased_until",
        "last_status_code",
        "last_latency_ms",
        "last_error_kind",
        "completed_at",
    ]
    inlines = [AttemptInline]
    show_full_result_count = False

    @admin.display(description="leased until")
    def leased_until(self, delivery: Delivery):
        """While a worker holds it: when its lease runs out."""
        lease = Lease.objects.filter(delivery=delivery).first()
        return lease.until if lease else "-"


@admin.register(Lane)
class LaneAdmin(admin.ModelAdmin):
    """Each webhook's place in the dispatcher's round: read-only, for looking."""

    list_display = ["webhook", "due_at", "rate_next_at"]
    search_fields = ["webhook__public_id", "webhook__name"]
    readonly_fields = ["webhook", "due_at", "rate_next_at"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False
