"""Forms parse what people type; the rules live in `configure` and `options` and are mapped back onto fields."""

import datetime

from django import forms
from django.conf import settings

from environments.portal_forms import PortalForm
from portal.inputs import EARLIEST_YEAR, LATEST_YEAR, validate_moment

from .bulk import RECOVER, STATUS_CHOICES, Selection
from .configure import WebhookFields, WebhookInvalid, selectable_credentials
from .delivery.bodies import HEARTBEAT_EVENT_TYPE
from .erasure import Scope, ScopeError, find_delivery
from .examples import example_payload
from .models import Delivery, Webhook
from .options import ALL_FIELDS, OPTIONS, OptionInvalid, payload_fields_from_choices

# The options that say how a webhook sends (order, requests at a time, rate), grouped in the form.
SENDING_POLICY = ("ordering", "max_in_flight", "max_per_second")


class EventTypesWidget(forms.CheckboxSelectMultiple):
    """Event types grouped by data type, each group with "select all", each type with its example payload."""

    template_name = "webhooks/widgets/event_types.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.examples: dict[str, str] = {}

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["examples"] = self.examples
        return context


class PayloadFieldsWidget(forms.CheckboxSelectMultiple):
    """Per data type: "every field" first, its single fields folded away under it (few Tab stops)."""

    template_name = "webhooks/widgets/payload_fields.html"


class WebhookForm(PortalForm):
    name = forms.CharField(max_length=100)
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="HTTPS. Requests are POSTed here; redirects are not followed.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.org/webhooks"}),
    )
    event_types = forms.MultipleChoiceField(
        widget=EventTypesWidget,
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

    client = forms.ChoiceField(
        required=False,
        label="API client it serves",
        help_text="That client's token reads this webhook's numbered events and status through the Data API "
        "(/api/v1/<environment>/webhooks/<id>/events), to fill a gap it detects.",
    )

    # Says the field chooser was on the page, so that no box ticked means "no field", not "not asked".
    payload_fields_shown = forms.CharField(widget=forms.HiddenInput, initial="1", required=False)

    def __init__(self, *args, environment, **kwargs):
        super().__init__(*args, **kwargs)
        for option in OPTIONS:  # declared once, in options.py
            self.fields[option.name] = option.form_field()
            self.fields[option.name].label = option.label
            self.fields[option.name].help_text = option.help
        # The sending policy comes last, under a heading of its own: how it sends, not what.
        self.order_fields([name for name in self.fields if name not in SENDING_POLICY] + list(SENDING_POLICY))
        self.fields[SENDING_POLICY[0]].heading = "How it sends"
        # A post without them at all (a page opened before they existed, a script) keeps what the webhook
        # has, as `to_fields` says; one that has them blank is checked as usual.
        self.policy_not_posted = [name for name in SENDING_POLICY if self.is_bound and name not in self.data]
        for name in self.policy_not_posted:
            self.fields[name].required = False
        self.environment = environment
        labels = {name: spec.get("label", name) for name, spec in environment.schema.get("data_types", {}).items()}
        groups: dict[str, list[tuple[str, str]]] = {}
        for name in environment.event_types:
            data_type = name.partition(".")[0]
            groups.setdefault(labels.get(data_type, data_type), []).append((name, name))
        self.fields["event_types"].choices = list(groups.items())
        self.fields["event_types"].widget.examples = {
            name: example_payload(environment, name) for name in environment.event_types
        }
        self._payload_field_choices(environment)
        self.fields["client"].choices = [("", "None")] + [
            (client.client_id, f"{client.name} ({client.client_id})") for client in environment.clients.all()
        ]
        # A post without it (a page opened before it existed, a script) keeps the client the webhook serves.
        self.client_not_posted = self.is_bound and "client" not in self.data
        # Only the credentials method signs with credentials: the field shows with that choice.
        self.fields["signing_credentials"].shown_when = f"security_method={Webhook.SecurityMethod.CREDENTIALS}"
        self.fields["signing_credentials"].choices = [
            (str(credential.id), f"{credential.client.name}: {credential.name} ({credential.hint}…)")
            for credential in selectable_credentials(environment)
        ]

    def _payload_field_choices(self, environment) -> None:
        """Per data type: every field (now and later), or the ones ticked; the mapping shown as those ticks."""
        data_types = environment.schema.get("data_types", {})
        self.data_type_names = list(data_types)
        field = self.fields["payload_fields"]
        field.widget = PayloadFieldsWidget()
        field.choices = [
            (
                spec.get("label", data_type),
                [(f"{data_type}.{ALL_FIELDS}", f"every field of {data_type}, those added later too")]
                + [(f"{data_type}.{name}", name) for name in spec.get("fields", {})],
            )
            for data_type, spec in data_types.items()
        ]
        chosen = self.initial.get("payload_fields")
        self.stored_payload_fields = chosen if isinstance(chosen, dict) else {}
        if not isinstance(chosen, list):  # the stored mapping (or nothing, for a new webhook)
            chosen = self.stored_payload_fields
            self.initial["payload_fields"] = [
                value
                for data_type, spec in data_types.items()
                for value in (
                    [f"{data_type}.{name}" for name in chosen[data_type]]
                    if data_type in chosen
                    else [f"{data_type}.{ALL_FIELDS}", *(f"{data_type}.{name}" for name in spec.get("fields", {}))]
                )
            ]

    def to_fields(self) -> WebhookFields:
        data = self.cleaned_data
        try:
            values = {option.name: option.from_form(data.get(option.name)) for option in OPTIONS}
            # The form knows the schema: a data type with no box ticked sends no field. A post without the
            # chooser at all (an older page, a script) keeps what the webhook had.
            values["payload_fields"] = (
                payload_fields_from_choices(data.get("payload_fields"), self.data_type_names)
                if data.get("payload_fields_shown")
                else self.stored_payload_fields
            )
        except OptionInvalid as error:
            raise WebhookInvalid({"extra_headers": str(error)}) from None
        for name in self.policy_not_posted:
            values[name] = self.initial.get(name, self.fields[name].initial)
        return WebhookFields(
            name=data["name"],
            url=data["url"],
            event_types=data["event_types"],
            security_method=data["security_method"],
            signing_credential_ids=data.get("signing_credentials", []),
            client_id=self.initial.get("client") if self.client_not_posted else data.get("client"),
            **values,
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
        "client": fields.client_id or "",
        **{option.name: option.to_form(getattr(fields, option.name)) for option in OPTIONS},
    }


class RotateSecretForm(PortalForm):
    grace_hours = forms.IntegerField(
        label="Keep the current secret signing for (hours)",
        min_value=0,
        max_value=168,
        initial=settings.WEBHOOK_SECRET_GRACE_HOURS,
        help_text="0 to 168 (7 days). During this time requests carry both signatures.",
    )


class ResumeForm(PortalForm):
    waiting = forms.ChoiceField(
        choices=[("send", "Send what is waiting, oldest first"), ("discard", "Discard what is waiting")],
        widget=forms.RadioSelect,
        initial="send",
    )


def moment_field(label: str) -> forms.DateTimeField:
    """An optional date-time input whose value survives storage (see `inputs.moment_problem`)."""
    return forms.DateTimeField(
        required=False,
        label=label,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        validators=[validate_moment],
    )


class BulkResendForm(PortalForm):
    status = forms.ChoiceField(
        label="Deliveries",
        choices=list(STATUS_CHOICES.items()),
        initial=RECOVER,
        required=False,
    )
    since = moment_field("From")
    until = moment_field("To")
    event_type = forms.ChoiceField(required=False, label="Event type")

    def __init__(self, data=None, *, webhook: Webhook):
        super().__init__(data)
        # What the webhook takes now, and what else the environment emits (it may have taken it before).
        types = sorted({*webhook.event_types, *webhook.environment.event_types})
        self.fields["event_type"].choices = [("", "All event types")] + [(name, name) for name in types]

    def selection(self, webhook: Webhook) -> Selection:
        data = self.cleaned_data
        return Selection(
            webhook,
            status=data.get("status") or RECOVER,
            since=data.get("since"),
            until=data.get("until"),
            event_type=(data.get("event_type") or "").strip(),
        )


class HistoryFilterForm(PortalForm):
    q = forms.CharField(required=False, label="Search", max_length=100)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Delivery.Status.choices])
    event_type = forms.ChoiceField(required=False, label="Event type")
    since = moment_field("From")
    until = moment_field("To")

    def __init__(self, data, *, environment):
        super().__init__(data)
        types = [*environment.event_types, "webhook.test", HEARTBEAT_EVENT_TYPE]
        self.fields["event_type"].choices = [("", "Any event type")] + [(name, name) for name in types]


def _webhook_choices(webhooks) -> list[tuple]:
    """A webhook select's choices: every webhook, or one of these."""
    return [("", "Every webhook")] + [(webhook.pk, webhook.name) for webhook in webhooks]


class ReconciliationForm(PortalForm):
    """Which days and webhook the reconciliation covers: the last 7 days of every webhook by default."""

    MAX_DAYS = 366

    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    webhook = forms.TypedChoiceField(label="Webhook", required=False, coerce=int, empty_value=None)

    def __init__(self, data, *, environment, today):
        super().__init__(data)
        self.today = today
        self.webhooks = {webhook.pk: webhook for webhook in environment.webhooks.order_by("name")}
        self.fields["webhook"].choices = _webhook_choices(self.webhooks.values())

    def clean(self):
        data = super().clean()
        for name in ("since", "until"):
            if (day := data.get(name)) and not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
                self.add_error(name, f"{day} is out of range. Choose a day between {EARLIEST_YEAR} and {LATEST_YEAR}.")
        if self.errors:
            # The default range is computed from these days: one out of range would overflow the calendar.
            return data
        until = data.get("until") or self.today
        since = data.get("since") or max(until - datetime.timedelta(days=6), datetime.date(EARLIEST_YEAR, 1, 1))
        if since > until:
            self.add_error("until", f"“To” ({until}) is before “From” ({since}): swap them.")
        elif (until - since).days >= self.MAX_DAYS:
            self.add_error("since", f"Choose at most {self.MAX_DAYS} days at a time.")
        data["since"], data["until"] = since, until
        data["webhook"] = self.webhooks.get(data.get("webhook"))
        return data


class EraseForm(PortalForm):
    """Which deliveries' payloads to erase: one, a webhook's in a range, or the environment's in a range.

    A delivery or webhook that is named but not found in the environment is an
    error on its field, never a scope without it (which would mean "all").
    """

    webhook = forms.TypedChoiceField(
        label="Webhook",
        required=False,
        coerce=int,
        empty_value=None,
        error_messages={
            "invalid_choice": "There is no webhook %(value)s in this environment: it was deleted, belongs to another "
            "environment, or is mistyped. Choose one from the list."
        },
    )
    since = moment_field("From")
    until = moment_field("To")
    delivery = forms.CharField(required=False, widget=forms.HiddenInput, strip=True, max_length=100)
    # The count the confirmation showed: more than that in scope when erasing, and nothing is erased.
    expected = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=0, max_value=2**62)

    def __init__(self, data, *, environment):
        super().__init__(data)
        self.environment = environment
        self.fields["webhook"].choices = _webhook_choices(environment.webhooks.order_by("name"))

    def clean_webhook(self):
        pk = self.cleaned_data.get("webhook")
        if pk is None:
            return None
        webhook = self.environment.webhooks.filter(pk=pk).first()
        if webhook is None:
            raise forms.ValidationError(self.fields["webhook"].error_messages["invalid_choice"] % {"value": pk})
        return webhook

    def clean_delivery(self):
        reference = self.cleaned_data.get("delivery") or ""
        if not reference:
            return None
        try:
            return find_delivery(self.environment, reference)
        except ScopeError as error:
            raise forms.ValidationError(str(error)) from None

    def scope(self) -> Scope:
        data = self.cleaned_data
        return Scope(
            self.environment,
            webhook=data.get("webhook"),
            delivery=data.get("delivery"),
            since=data.get("since"),
            until=data.get("until"),
        )


class RetentionForm(PortalForm):
    days = forms.IntegerField(
        label="Keep payloads for (days)",
        required=False,
        min_value=1,
        max_value=36_500,
        help_text="Request and response bodies older than this are erased every day; ids, times, status codes "
        "and event types stay. Empty: kept as long as the deliveries.",
    )
