"""Webhook options are declared once (`webhooks/options.py`); the form, the command and the records follow it."""

import dataclasses
import types
import typing

import pytest

from environments.tests.factories import make_environment
from webhooks.configure import WebhookFields
from webhooks.delivery.ledger import Target
from webhooks.forms import WebhookForm
from webhooks.management.commands.create_webhook import Command
from webhooks.management.lookups import describe
from webhooks.models import Webhook
from webhooks.options import OPTION_NAMES, OPTIONS, OptionValues, defaults
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db


def test_every_option_is_a_model_field_a_form_field_a_command_flag_and_shown_in_json():
    environment = make_environment()
    form = WebhookForm(environment=environment)
    parser = Command().create_parser("manage.py", "create_webhook")
    flags = {action.dest for action in parser._actions}
    shown = describe(make_webhook(environment, "http://127.0.0.1:9999/hooks"))
    for option in OPTIONS:
        Webhook._meta.get_field(option.name)
        assert option.name in form.fields and form.fields[option.name].label == option.label
        assert option.name in flags
        assert option.audit_key() in shown


def test_options_not_given_take_their_defaults_and_unknown_ones_are_refused():
    fields = WebhookFields("Hook", "http://127.0.0.1:9999/hooks", ["patients.created"], max_events_per_request=10)
    assert fields.max_events_per_request == 10
    assert fields.timeout_seconds == defaults()["timeout_seconds"]
    with pytest.raises(TypeError, match="colour"):
        WebhookFields("Hook", "http://127.0.0.1:9999/hooks", ["patients.created"], colour="blue")


def test_each_option_is_a_typed_attribute_matching_its_model_field_for_the_type_checker():
    declared = typing.get_type_hints(OptionValues)
    assert [each.name for each in dataclasses.fields(OptionValues)] == OPTION_NAMES == list(declared)
    for option in OPTIONS:
        python_type = declared[option.name]
        if typing.get_origin(python_type) is not types.UnionType:  # `float | None` is checked as it is
            python_type = typing.get_origin(python_type) or python_type
        assert isinstance(option.default(), python_type), option.name
        assert isinstance(Webhook._meta.get_field(option.name).get_default(), python_type), option.name
    # What a user sets and what sending reads have the options as these same declared attributes.
    assert issubclass(WebhookFields, OptionValues) and issubclass(Target, OptionValues)
