from django.contrib import admin

from monitoring.models import Alert, AlertRule


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    # Saving runs AlertRule.clean(): the same validation as the API and the dashboard.
    list_display = [
        "public_id",
        "organization",
        "webhook",
        "fires_when",
        "window_minutes",
        "min_attempts",
        "enabled",
    ]
    list_filter = ["metric", "enabled"]
    search_fields = ["public_id", "organization__name", "webhook__public_id"]
    raw_id_fields = ["organization", "webhook"]
    readonly_fields = ["public_id", "created_at", "updated_at"]

    @admin.display(description="fires when", ordering="metric")
    def fires_when(self, rule: AlertRule) -> str:
        return rule.condition_text()


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
        "current_value",
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
