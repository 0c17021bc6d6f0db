"""Rough edges of the portal (issue 27), each closed and kept closed."""

import pytest

from credentials.services import CredentialError, create_client, rename_client
from webhooks.configure import WebhookInvalid
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db


def test_a_webhook_name_differing_only_in_case_is_refused(env):
    make_webhook(env, "http://127.0.0.1:9201/a", name="Lab receiver")
    with pytest.raises(WebhookInvalid) as refused:
        make_webhook(env, "http://127.0.0.1:9201/b", name="lab RECEIVER")
    assert refused.value.errors == {"name": "Clinic already has a webhook named “Lab receiver”"}


def test_a_client_name_differing_only_in_case_is_refused_on_create_and_rename(env):
    create_client(env, "Lab app", ["patients:read"])
    other = create_client(env, "Other app", ["patients:read"])
    with pytest.raises(CredentialError, match="Clinic already has a client named “Lab app”"):
        create_client(env, "lab APP", ["patients:read"])
    with pytest.raises(CredentialError, match="Clinic already has a client named “Lab app”"):
        rename_client(other, "LAB app")
    rename_client(other, "OTHER APP")  # its own name in another case is fine
