"""Webhook options are declared once (`webhooks/options.py`); the form, the command and the records follow it."""

import pytest

from environments.tests.factories import make_environment
from webhooks.configure import WebhookFields
from webhooks.forms import WebhookForm
from webhooks.management.commands.create_webhook import Command
from webhooks.management.lookups import describe
from webhooks.models import Webhook
from webhooks.options import OPTIONS, defaults
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
