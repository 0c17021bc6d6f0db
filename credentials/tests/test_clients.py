"""A client's page: rename, re-scope (saying what happens to live tokens), disable, and delete when unused."""

import pytest
from django.test import Client as Browser

from credentials.models import Client
from credentials.tests.factories import form_post, make_client, make_credential
from credentials.tests.test_token_endpoint import basic
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import grant, log_in_director, make_environment, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def env():
    environment = make_environment("clinic")
    create_record(environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
    return environment


def exchange(app, secret) -> tuple[int, str]:
    response = form_post(
        Browser(),
        "/oauth/token",
        {"grant_type": "client_credentials"},
        headers={"Authorization": basic(app.client_id, secret)},
    )
    return response.status_code, response.json().get("access_token", "")


def read_patients(token) -> int:
    return Browser().get("/api/v1/clinic/patients/", headers={"Authorization": f"Bearer {token}"}).status_code


def page_of(client, app) -> str:
    return client.get(f"/e/clinic/credentials/clients/{app.client_id}/").content.decode()


def test_renaming_keeps_the_client_id_and_is_audited(client, env):
    log_in_director(client, env)
    app = make_client(env, name="Lab importer")
    make_client(env, name="Billing")
    response = client.post(
        f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "rename", "rename-name": "Lab"}
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.name == "Lab"
    refused = client.post(
        f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "rename", "rename-name": "Billing"}
    )
    assert refused.status_code == 400 and "already has a client named “Billing”" in refused.content.decode()
    assert AuditEvent.objects.filter(action="client.renamed", details__to="Lab").exists()


def test_narrowed_scopes_apply_to_new_tokens_and_to_live_ones_only_when_asked(client, env):
    log_in_director(client, env)
    app = make_client(env, scopes=["patients:read", "patients:write"])
    _, secret = make_credential(app)
    _, kept = exchange(app, secret)
    assert "Tokens already issued keep the scopes they were issued with" in page_of(client, app)

    client.post(
        f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "scopes", "scopes-scopes": ["workers:read"]}
    )
    assert read_patients(kept) == 200  # issued before: keeps its scopes until it expires
    _, new = exchange(app, secret)
    assert read_patients(new) == 403

    response = client.post(
        f"/e/clinic/credentials/clients/{app.client_id}/",
        {"action": "scopes", "scopes-scopes": ["workers:read"], "scopes-revoke_live_tokens": "on"},
        follow=True,
    )
    assert "2 tokens it held ended now" in response.content.decode()
    assert read_patients(kept) == 401
    changed = AuditEvent.objects.filter(action="client.scopes_changed").order_by("id").first()
    assert changed.details["from"] == ["patients:read", "patients:write"] and changed.details["to"] == ["workers:read"]


def test_a_disabled_client_gets_no_token_and_its_tokens_stop_at_once(client, env):
    log_in_director(client, env)
    app = make_client(env)
    _, secret = make_credential(app)
    _, token = exchange(app, secret)
    page = page_of(client, app)
    assert "Disable client and end its 1 token" in page

    response = client.post(f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "disable"}, follow=True)
    assert "is disabled: it obtains no token, and the 1 token it held ended." in response.content.decode()
    assert read_patients(token) == 401
    assert exchange(app, secret)[0] == 401

    client.post(f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "enable"})
    status, token = exchange(app, secret)
    assert status == 200 and read_patients(token) == 200


def test_only_a_client_never_used_can_be_deleted(client, env):
    log_in_director(client, env)
    unused = make_client(env, name="Never used")
    make_credential(unused)
    used = make_client(env, name="Used")
    _, secret = make_credential(used)
    exchange(used, secret)

    assert "it has obtained tokens, and its access history is kept: disable it instead" in page_of(client, used)
    refused = client.post(f"/e/clinic/credentials/clients/{used.client_id}/", {"action": "delete"}, follow=True)
    assert "Nothing was changed: “Used” cannot be deleted" in refused.content.decode()
    client.post(f"/e/clinic/credentials/clients/{unused.client_id}/", {"action": "delete"})
    assert list(Client.objects.values_list("name", flat=True)) == ["Used"]
    assert AuditEvent.objects.filter(action="client.deleted", details__client_id=unused.client_id).exists()


def test_a_viewer_sees_the_client_but_changes_nothing(client, env):
    app = make_client(env, name="Lab importer")
    viewer = make_user("viewer")
    grant(viewer, env, "viewer")
    client.force_login(viewer)
    page = page_of(client, app)
    assert "Lab importer" in page and "Danger zone" not in page and "Rename" not in page
    assert client.post(f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "disable"}).status_code == 403
    app.refresh_from_db()
    assert app.disabled_at is None


def test_one_live_token_is_spoken_of_in_the_singular(client, env):
    log_in_director(client, env)
    app = make_client(env, name="Lab importer")
    credential, secret = make_credential(app)
    exchange(app, secret)
    assert "the 1 token it holds stops working now" in page_of(client, app)
    revoke_page = client.get(f"/e/clinic/credentials/{credential.pk}/revoke-tokens/").content.decode()
    assert "The 1 live access token issued to this credential will stop working at once. Apps using it get 401" in (
        revoke_page
    )
    disabled = client.post(
        f"/e/clinic/credentials/clients/{app.client_id}/", {"action": "disable"}, follow=True
    ).content.decode()
    assert "“Lab importer” is disabled: it obtains no token, and the 1 token it held ended." in disabled
