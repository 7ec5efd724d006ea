from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard import assets, portal, staff, views
from dashboard.signin import ThrottledAuthenticationForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=ThrottledAuthenticationForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("favicon.ico", assets.favicon, name="favicon"),
    path("", views.overview, name="overview"),
    path("orgs/switch/", views.switch_organization, name="switch_organization"),
    path("webhooks/new/", views.webhook_create, name="webhook_create"),
    path("webhooks/preview/", views.pattern_preview, name="pattern_preview"),
    path("webhooks/<str:webhook_id>/", views.webhook_detail, name="webhook"),
    path("webhooks/<str:webhook_id>/log/", views.webhook_log, name="webhook_log"),
    path("webhooks/<str:webhook_id>/edit/", views.webhook_edit, name="webhook_edit"),
    path("webhooks/<str:webhook_id>/delete/", views.webhook_delete, name="webhook_delete"),
    path("webhooks/<str:webhook_id>/pause/", views.webhook_pause, name="webhook_pause"),
    path("webhooks/<str:webhook_id>/resume/", views.webhook_resume, name="webhook_resume"),
    path("webhooks/<str:webhook_id>/test/", views.webhook_test, name="webhook_test"),
    path(
        "webhooks/<str:webhook_id>/retry-failed/",
        views.webhook_retry_failed,
        name="webhook_retry_failed",
    ),
    path("webhooks/<str:webhook_id>/replay/", views.webhook_replay, name="webhook_replay"),
    path(
        "webhooks/<str:webhook_id>/replays/<str:replay_id>/",
        views.replay_progress,
        name="replay_progress",
    ),
    path("webhooks/<str:webhook_id>/secret/", views.webhook_secret, name="webhook_secret"),
    path("webhooks/<str:webhook_id>/rotate-secret/", views.webhook_rotate, name="webhook_rotate"),
    path("deliveries/<str:delivery_id>/", views.delivery_detail, name="delivery"),
    path("deliveries/<str:delivery_id>/row/", views.delivery_row, name="delivery_row"),
    path("deliveries/<str:delivery_id>/retry/", views.delivery_retry, name="delivery_retry"),
    path("deliveries/<str:delivery_id>/resend/", views.delivery_resend, name="delivery_resend"),
    path("events/", views.events, name="events"),
    path("events/<str:event_id>/", views.event_detail, name="event"),
    path("alerts/", views.alerts_page, name="alerts"),
    path("alerts/rules/new/", views.rule_create, name="rule_create"),
    path("alerts/rules/<str:rule_id>/", views.rule_edit, name="rule_edit"),
    path("alerts/rules/<str:rule_id>/delete/", views.rule_delete, name="rule_delete"),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/<str:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("portal/theme.css", portal.theme, name="portal_theme"),
    path("portal/<str:token>/", portal.enter, name="portal_enter"),
    path("staff/", staff.console_page, name="staff"),
    path("staff/orgs/<str:org>/", staff.open_organization, name="staff_open"),
    path("staff/leave/", staff.leave_organization, name="staff_leave"),
]
