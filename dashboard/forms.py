"""Dashboard forms. The rules live in webhooks.validation (shared with the
API); these forms only turn its errors into messages next to the fields."""

from datetime import UTC

from django import forms

from deliveries.replay import Criteria
from webhooks import validation
from webhooks.errors import InvalidInput
from webhooks.models import Webhook


def checked(function, *args):
    """Run a webhooks.validation rule; its error becomes the field's error."""
    try:
        return function(*args)
    except InvalidInput as error:
        raise forms.ValidationError(error.message) from None


def parse_header_lines(text: str) -> dict[str, str]:
    """'Name: value' per line into a dict; a line without a colon is an error."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise forms.ValidationError(f"Line {number}: write headers as 'Name: value'.")
        headers[name.strip()] = value.strip()
    return headers


def split_patterns(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    url = forms.CharField(
        label="Endpoint URL",
        max_length=2048,
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
    )
    known_types = forms.MultipleChoiceField(
        label="Event types", required=False, widget=forms.CheckboxSelectMultiple
    )
    patterns = forms.CharField(
        label="Other types or patterns",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "person.*\norder.paid"}),
        help_text="One per line: an exact type, 'resource.*', or '*' for everything.",
    )
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    timeout_seconds = forms.IntegerField(
        label="Timeout (seconds)", min_value=1, max_value=300, initial=10
    )
    max_attempts = forms.IntegerField(min_value=1, max_value=10, initial=5)
    verify_tls = forms.BooleanField(label="Verify TLS certificates", required=False, initial=True)
    max_in_flight = forms.IntegerField(
        label="Requests at once",
        min_value=validation.MAX_IN_FLIGHT_RANGE[0],
        max_value=validation.MAX_IN_FLIGHT_RANGE[1],
        initial=10,
        help_text="At most this many in flight together, across all workers.",
    )
    rate_limit = forms.IntegerField(
        label="Rate limit (per second)",
        min_value=validation.RATE_LIMIT_RANGE[0],
        max_value=validation.RATE_LIMIT_RANGE[1],
        required=False,
        help_text="Empty: no limit. Deliveries held back wait; they are not attempts.",
    )
    ordered = forms.BooleanField(
        label="Deliver in order, one at a time",
        required=False,
        help_text="A failing delivery holds the later ones until it ends.",
    )
    signature_style = forms.ChoiceField(
        choices=Webhook.SignatureStyle.choices, required=False, label="Compatibility signature"
    )
    signature_header = forms.CharField(max_length=100, initial="X-Webhook-Signature")
    headers = forms.CharField(
        label="Custom headers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Authorization: Bearer …"}),
        help_text="One 'Name: value' per line, sent with every request.",
    )

    def __init__(self, *args, event_types: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["known_types"].choices = [(name, name) for name in event_types]

    @classmethod
    def initial_for(cls, webhook: Webhook, event_types: list[str]) -> dict:
        known = [p for p in webhook.event_patterns if p in event_types]
        return {
            "name": webhook.name,
            "url": webhook.url,
            "known_types": known,
            "patterns": "\n".join(p for p in webhook.event_patterns if p not in known),
            "description": webhook.description,
            "timeout_seconds": webhook.timeout_seconds,
            "max_attempts": webhook.max_attempts,
            "verify_tls": webhook.verify_tls,
            "max_in_flight": webhook.max_in_flight,
            "rate_limit": webhook.rate_limit,
            "ordered": webhook.ordered,
            "signature_style": webhook.signature_style,
            "signature_header": webhook.signature_header,
            "headers": "\n".join(f"{k}: {v}" for k, v in webhook.headers.items()),
        }

    def clean_url(self):
        return checked(validation.clean_url, self.cleaned_data["url"])

    def clean_name(self):
        return checked(validation.clean_text, self.cleaned_data["name"], "name", 200)

    def clean_description(self):
        return checked(validation.clean_text, self.cleaned_data["description"], "description", 2000)

    def clean_signature_header(self):
        return checked(validation.clean_header_name, self.cleaned_data["signature_header"])

    def clean(self):
        data = super().clean()
        patterns = list(data.get("known_types") or []) + split_patterns(data.get("patterns") or "")
        if "patterns" not in self.errors:
            try:
                data["event_patterns"] = validation.clean_event_patterns(patterns)
            except InvalidInput as error:
                self.add_error("patterns", error.message)
        if "signature_header" in data and "headers" not in self.errors:
            try:
                headers = parse_header_lines(data.get("headers") or "")
                data["header_dict"] = validation.clean_headers(headers, data["signature_header"])
            except forms.ValidationError as error:
                self.add_error("headers", error)
            except InvalidInput as error:
                self.add_error("headers", error.message)
        return data

    def webhook_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "url": data["url"],
            "description": data["description"],
            "event_patterns": data["event_patterns"],
            "timeout_seconds": data["timeout_seconds"],
            "max_attempts": data["max_attempts"],
            "verify_tls": data["verify_tls"],
            # An ordered webhook sends one at a time, whatever the box said.
            "max_in_flight": 1 if data["ordered"] else data["max_in_flight"],
            "rate_limit": data["rate_limit"],
            "ordered": data["ordered"],
            "signature_style": data.get("signature_style") or "",
            "signature_header": data["signature_header"],
            "headers": data["header_dict"],
        }


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="What uses this key, e.g. 'billing service'.")

    def clean_name(self):
        return checked(validation.clean_text, self.cleaned_data["name"], "name", 200)


class RuleForm(forms.Form):
    """An alert rule. Success rate is entered in percent here (the API takes 0–1)."""

    webhook = forms.ChoiceField(required=False, label="Webhook")
    metric = forms.ChoiceField(
        choices=[
            ("failed_deliveries", "Failed deliveries over"),
            ("avg_latency_ms", "Average latency (ms) over"),
            ("success_rate", "Success rate (%) under"),
        ]
    )
    threshold = forms.FloatField()
    window_minutes = forms.IntegerField(label="Window (minutes)", initial=60)
    min_attempts = forms.IntegerField(
        label="Minimum attempts", initial=10, help_text="In the window, before the rule can fire."
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, webhooks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["webhook"].choices = [("", "Every webhook")] + [
            (w.public_id, w.name or w.url) for w in webhooks
        ]

    @classmethod
    def initial_for(cls, rule) -> dict:
        threshold = rule.threshold * 100 if rule.metric == "success_rate" else rule.threshold
        threshold = round(threshold, 4)
        return {
            "webhook": rule.webhook.public_id if rule.webhook_id else "",
            "metric": rule.metric,
            # A whole number reads as one: "5" failed deliveries, not "5.0".
            "threshold": int(threshold) if threshold.is_integer() else threshold,
            "window_minutes": rule.window_minutes,
            "min_attempts": rule.min_attempts,
            "enabled": rule.enabled,
        }

    def rule_fields(self) -> dict:
        data = self.cleaned_data
        threshold = data["threshold"]
        if data["metric"] == "success_rate":
            threshold = threshold / 100
        return {
            "webhook": data["webhook"] or None,
            "metric": data["metric"],
            "threshold": threshold,
            "window_minutes": data["window_minutes"],
            "min_attempts": data["min_attempts"],
            "enabled": data["enabled"],
        }

    def show_error(self, error: InvalidInput) -> None:
        field = error.field if error.field in self.fields else None
        message = error.message
        if field == "threshold" and self.cleaned_data.get("metric") == "success_rate":
            message = "a success rate is a percentage above 0 and at most 100"
        self.add_error(field, message)


class ReplayForm(forms.Form):
    """The Replay dialog (SPEC §7): a time range (UTC), which events by this
    webhook's delivery of them, and a type or pattern. deliveries.replay
    checks the rest (a pattern's syntax, a range too long)."""

    since = forms.DateTimeField(
        label="From (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        label="To (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty for now: counting fills in the moment counted.",
    )
    status = forms.ChoiceField(
        label="Events",
        choices=[
            ("any", "all of them"),
            ("failed", "those whose delivery failed"),
            ("succeeded", "those whose delivery succeeded"),
            ("none", "those it never got (backfill)"),
        ],
    )
    event_type = forms.CharField(
        label="Type",
        required=False,
        max_length=100,
        help_text="A type or a pattern; empty for all.",
    )

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be later than From.")
        return data

    def criteria(self) -> Criteria:
        data = self.cleaned_data
        # The wall-clock time typed, read as UTC (as the labels say).
        return Criteria(
            since=data["since"].replace(tzinfo=UTC),
            until=data["until"].replace(tzinfo=UTC) if data.get("until") else None,
            status=data["status"],
            event_type=data["event_type"].strip(),
        )

    def show_error(self, error: InvalidInput) -> None:
        self.add_error(error.field if error.field in self.fields else None, error.message)
