"""Forms of the Credentials pages."""

import datetime

from django import forms
from django.utils import timezone

from environments.portal_forms import PortalForm

from .scopes import available_scopes


class ClientForm(PortalForm):
    name = forms.CharField(max_length=100, help_text="One client per system, so one can be cut off alone.")
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope: a client with no scope can read nothing."},
        help_text="Grant only what the system needs.",
    )

    def __init__(self, *args, environment, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, scope) for scope in available_scopes(environment)]


class CredentialForm(PortalForm):
    name = forms.CharField(max_length=100, help_text="Where it will be used, e.g. “Production server”.")
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The credential stops working at the start of this day (UTC).",
    )

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.now().date():
            raise forms.ValidationError("Choose a day after today.")
        return day

    @property
    def expires_at(self):
        day = self.cleaned_data.get("expires_on")
        return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC) if day else None


class RenameForm(PortalForm):
    name = forms.CharField(max_length=100)


class InvalidateForm(PortalForm):
    reason = forms.CharField(max_length=500, required=False, help_text="Kept in the credential's history.")


class RevokeTokensForm(PortalForm):
    reason = forms.CharField(max_length=200, required=False, help_text="Kept in the audit log.")


class ClientScopesForm(PortalForm):
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope: a client with no scope can read nothing."},
        help_text="New tokens get these. Tokens already issued keep the scopes they were issued with until they "
        "expire, unless you end them now.",
    )
    revoke_live_tokens = forms.BooleanField(
        required=False, label="End the tokens it holds now, so the change applies at once"
    )

    def __init__(self, *args, environment, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, scope) for scope in available_scopes(environment)]
