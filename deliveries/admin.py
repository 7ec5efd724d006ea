from django.contrib import admin

from deliveries.models import Alert, AlertRule, Delivery, DeliveryAttempt, Event


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
        "claimed_until",
        "last_status_code",
        "last_latency_ms",
        "last_error_kind",
        "completed_at",
    ]
    inlines = [AttemptInline]
    show_full_result_count = False


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    # Saving runs AlertRule.clean(): the same validation as the API and the dashboard.
    list_display = [
        "public_id",
        "organization",
        "webhook",
        "metric",
        "threshold",
        "window_minutes",
        "min_attempts",
        "enabled",
    ]
    list_filter = ["metric", "enabled"]
    search_fields = ["public_id", "organization__name", "webhook__public_id"]
    raw_id_fields = ["organization", "webhook"]
    readonly_fields = ["public_id", "created_at", "updated_at"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "organization",
        "webhook",
        "kind",
        "state",
        "metric",
        "value",
        "opened_at",
        "resolved_at",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["public_id", "webhook__public_id"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        # Alerts are a record of what happened: rules open them, resume closes them.
        return [f.name for f in Alert._meta.fields if f.name != "id"]

    def has_add_permission(self, request):
        return False
