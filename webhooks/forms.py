"""Forms parse what people type; the rules themselves live in `services` and are mapped back onto fields."""

from django import forms
from django.conf import settings

from .configure import WebhookFields, WebhookInvalid, parse_headers, selectable_credentials
from .models import Delivery, Webhook


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="HTTPS. Requests are POSTed here; redirects are not followed.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.org/webhooks"}),
    )
    event_types = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        help_text="Only these are sent. Data types added to the schema later are not subscribed.",
    )
    security_method = forms.ChoiceField(
        choices=Webhook.SecurityMethod.choices,
        widget=forms.RadioSelect,
        initial=Webhook.SecurityMethod.SIGNING_SECRET,
        help_text="Either way requests carry Standard Webhooks signatures (webhook-signature).",
    )
    signing_credentials = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="With the credentials method: each selected active credential signs every request.",
    )
    verify_tls = forms.BooleanField(label="Verify TLS certificates", required=False, initial=True)
    payload_format = forms.ChoiceField(choices=Webhook.PayloadFormat.choices, initial=Webhook.PayloadFormat.FULL)
    max_events_per_request = forms.IntegerField(
        label="Maximum events per request",
        min_value=1,
        max_value=settings.WEBHOOK_MAX_EVENTS_PER_REQUEST_MAX,
        initial=1,
        help_text='1 sends one event per request; more sends batches as {"events": [...]}.',
    )
    timeout_seconds = forms.IntegerField(
        label="Timeout (seconds)",
        min_value=1,
        max_value=settings.WEBHOOK_TIMEOUT_SECONDS_MAX,
        initial=settings.WEBHOOK_TIMEOUT_SECONDS,
    )
    extra_headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "X-Team: care-ops"}),
        help_text="One “Name: value” per line, sent with every request.",
    )

    def __init__(self, *args, environment, **kwargs):
        super().__init__(*args, **kwargs)
        self.environment = environment
        self.fields["event_types"].choices = [(name, name) for name in environment.event_types]
        self.fields["signing_credentials"].choices = [
            (str(credential.id), f"{credential.client.name}: {credential.name} ({credential.hint}…)")
            for credential in selectable_credentials(environment)
        ]

    def to_fields(self) -> WebhookFields:
        data = self.cleaned_data
        headers = parse_headers(data.get("extra_headers", ""))
        return WebhookFields(
            name=data["name"],
            url=data["url"],
            event_types=data["event_types"],
            security_method=data["security_method"],
            signing_credential_ids=data.get("signing_credentials", []),
            verify_tls=data["verify_tls"],
            payload_format=data["payload_format"],
            max_events_per_request=data["max_events_per_request"],
            timeout_seconds=data["timeout_seconds"],
            extra_headers=headers,
        )

    def show(self, error: WebhookInvalid) -> None:
        """Put the service's field errors on the form's fields."""
        for name, message in error.errors.items():
            field = name if name in self.fields else None
            self.add_error(field, message[:1].upper() + message[1:] + ("" if message.endswith(".") else "."))


def initial_of(fields: WebhookFields) -> dict:
    return {
        "name": fields.name,
        "url": fields.url,
        "event_types": fields.event_types,
        "security_method": fields.security_method,
        "signing_credentials": fields.signing_credential_ids,
        "verify_tls": fields.verify_tls,
        "payload_format": fields.payload_format,
        "max_events_per_request": fields.max_events_per_request,
        "timeout_seconds": fields.timeout_seconds,
        "extra_headers": "\n".join(f"{name}: {value}" for name, value in fields.extra_headers.items()),
    }


class RotateSecretForm(forms.Form):
    grace_hours = forms.IntegerField(
        label="Keep the current secret signing for (hours)",
        min_value=0,
        max_value=168,
        initial=settings.WEBHOOK_SECRET_GRACE_HOURS,
        help_text="0 to 168 (7 days). During this time requests carry both signatures.",
    )


class ResumeForm(forms.Form):
    waiting = forms.ChoiceField(
        choices=[("send", "Send what is waiting, in order"), ("discard", "Discard what is waiting")],
        widget=forms.RadioSelect,
        initial="send",
    )


class BulkResendForm(forms.Form):
    since = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="From"
    )
    until = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="To"
    )


class HistoryFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=100)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Delivery.Status.choices])
    event_type = forms.CharField(required=False, label="Event type", max_length=127)
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
