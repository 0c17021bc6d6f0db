"""Portal forms: parse and check input; the service functions do the work."""

import json

from django import forms

from .configurations import ConfigurationError, parse_schema_text
from .models import Configuration, Environment
from .portal_forms import PortalForm


class ConfigurationForm(PortalForm):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=63, help_text="Lowercase letters, digits and hyphens; used in commands.")


class EnvironmentForm(PortalForm):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=63, help_text="Used in URLs and the Data API: /api/v1/<slug>/…")
    kind = forms.ChoiceField(choices=Environment.Kind.choices)
    configuration = forms.ModelChoiceField(queryset=Configuration.objects.all())


class DraftForm(PortalForm):
    schema = forms.CharField(
        # A plain textarea with a line-number gutter (static/js/schema_editor.js): no library to vendor, and it
        # stays a textarea for screen readers, the keyboard and form posts.
        widget=forms.Textarea(
            attrs={
                "rows": 24,
                "spellcheck": "false",
                "class": "code schema-editor",
                "wrap": "off",
                "data-line-numbers": "",
            }
        ),
        help_text='JSON: {"data_types": {"patients": {"fields": {...}}, "workers": {...}}}',
    )
    note = forms.CharField(max_length=200, required=False, help_text="What changed, for the version list.")

    def clean_schema(self):
        try:
            return parse_schema_text(self.cleaned_data["schema"])
        except ConfigurationError as error:
            raise forms.ValidationError(str(error)) from None

    @staticmethod
    def initial_text(schema) -> str:
        return json.dumps(schema, indent=2)


class PublishForm(PortalForm):
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one environment to publish to."},
    )

    accept_invalid_records = forms.BooleanField(
        required=False,
        label="Publish anyway: integrators get the breaking changes named above",
        help_text="Records left invalid stay as they are; a PATCH can still change them one field at a time, "
        "and the fields it sends must fit the new schema.",
    )

    def __init__(self, *args, configuration: Configuration, confirming: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environments"].queryset = configuration.environments.select_related("published_version")
        # Offered only once the records it would leave invalid have been shown.
        if not confirming:
            del self.fields["accept_invalid_records"]


class AuditFilterForm(PortalForm):
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), required=False, empty_label="All")
    actor = forms.CharField(required=False, max_length=100)
    action = forms.CharField(required=False, max_length=64, help_text="e.g. configuration.published")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["environment"].to_field_name = "slug"

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return cleaned
