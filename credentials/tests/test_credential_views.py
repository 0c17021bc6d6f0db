"""The Credentials pages: a secret is shown once; changes need the right role; every change is audited."""

import pytest

from credentials.models import Client, Credential
from credentials.services import CredentialInUse, invalidate_credential
from credentials.tests.factories import make_client, make_credential, stored_secret
from environments.models import AuditEvent, Grant
from environments.tests.factories import grant, make_environment, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def env():
    return make_environment("clinic")


@pytest.fixture
def director(client, env):
    user = make_user("dana")
    grant(user, env, Grant.Role.PROGRAM_DIRECTOR)
    client.force_login(user)
    return user


def test_a_director_creates_a_client_then_a_credential_whose_secret_shows_once(client, env, director):
    response = client.post("/e/clinic/credentials/clients/new/", {"name": "EHR sync", "scopes": ["patients:read"]})
    api_client = Client.objects.get(name="EHR sync")
    assert response["Location"] == f"/e/clinic/credentials/clients/{api_client.client_id}/new-credential/"
    assert api_client.scopes == ["patients:read"]

    response = client.post(response["Location"], {"name": "Production"})
    credential = Credential.objects.get()
    assert response["Location"] == f"/e/clinic/credentials/{credential.id}/secret/"

    first = client.get(response["Location"])
    page = first.content.decode()
    secret = page.split('<code id="client-secret">')[1].split("</code>")[0]
    assert secret.startswith("itcs_") and len(secret) >= 45
    assert "no-store" in first["Cache-Control"]
    assert credential.secret_digest != secret and secret not in stored_secret(credential)

    second = client.get(response["Location"]).content.decode()
    assert secret not in second
    assert "cannot be shown again" in second
    assert secret not in client.get("/e/clinic/credentials/").content.decode()
    assert AuditEvent.objects.filter(action="credential.created", actor_label="dana").exists()
    assert not any(secret in str(e.details) for e in AuditEvent.objects.all())


def test_a_client_needs_a_scope_and_a_unique_name(client, env, director):
    response = client.post("/e/clinic/credentials/clients/new/", {"name": "EHR"})
    assert "Choose at least one scope" in response.content.decode()
    make_client(env, name="EHR")
    response = client.post("/e/clinic/credentials/clients/new/", {"name": "EHR", "scopes": ["patients:read"]})
    assert "Clinic already has a client named “EHR”" in response.content.decode()
    assert Client.objects.count() == 1


def test_an_expiry_must_be_in_the_future(client, env, director):
    api_client = make_client(env)
    response = client.post(
        f"/e/clinic/credentials/clients/{api_client.client_id}/new-credential/",
        {"name": "Old", "expires_on": "2001-01-01"},
    )
    assert "Choose a day after today." in response.content.decode()
    assert not Credential.objects.exists()


def test_rename_and_invalidate_are_recorded(client, env, director):
    credential, _ = make_credential(make_client(env))
    client.post(f"/e/clinic/credentials/{credential.id}/rename/", {"name": "Renamed"})
    confirm = client.get(f"/e/clinic/credentials/{credential.id}/invalidate/").content.decode()
    assert "Tokens it already obtained stay valid until they expire" in confirm
    client.post(f"/e/clinic/credentials/{credential.id}/invalidate/", {"reason": "rotated"})

    credential.refresh_from_db()
    assert credential.name == "Renamed"
    assert (credential.state, credential.invalidated_by, credential.invalidation_reason) == (
        "invalidated",
        "dana",
        "rotated",
    )
    actions = list(AuditEvent.objects.filter(target_id=str(credential.id)).values_list("action", flat=True))
    assert sorted(actions) == ["credential.created", "credential.invalidated", "credential.renamed"]


def signs_billing_feed(candidate):
    """A stand-in for the webhooks app's check: a webhook "Billing feed" signs with the credential "Primary"."""
    return [("Billing feed", "/e/clinic/webhooks/7/")] if candidate.name == "Primary" else []


def test_a_credential_in_use_by_a_webhook_cannot_be_invalidated_and_the_page_says_which(
    client, env, director, settings
):
    credential, _ = make_credential(make_client(env))
    settings.CREDENTIAL_IN_USE_CHECKS = [f"{__name__}.signs_billing_feed"]
    page = client.get(f"/e/clinic/credentials/{credential.id}/invalidate/").content.decode()
    assert 'This credential signs webhook <a href="/e/clinic/webhooks/7/#signing">“Billing feed”</a>' in page
    response = client.post(f"/e/clinic/credentials/{credential.id}/invalidate/", {"reason": "x"})
    assert "“Billing feed”</a>" in response.content.decode()
    with pytest.raises(CredentialInUse, match="“Primary” is used to sign webhook “Billing feed”; remove it"):
        invalidate_credential(credential)
    credential.refresh_from_db()
    assert credential.state == "active"


def test_viewers_see_credentials_but_cannot_change_them(client, env):
    credential, _ = make_credential(make_client(env, name="EHR"))
    viewer = make_user("vic")
    grant(viewer, env, Grant.Role.VIEWER)
    client.force_login(viewer)

    page = client.get("/e/clinic/credentials/").content.decode()
    assert "EHR" in page and "Invalidate" not in page and "New client" not in page
    for path in (
        "/e/clinic/credentials/clients/new/",
        f"/e/clinic/credentials/{credential.id}/rename/",
        f"/e/clinic/credentials/{credential.id}/invalidate/",
        f"/e/clinic/credentials/{credential.id}/revoke-tokens/",
    ):
        assert client.post(path, {"name": "x", "reason": "x"}).status_code == 403, path
    credential.refresh_from_db()
    assert (credential.name, credential.state) == ("Primary", "active")


def test_credentials_of_another_environment_are_not_reachable(client, env, director):
    other = make_environment("lab")
    credential, _ = make_credential(make_client(other))
    assert client.get(f"/e/clinic/credentials/{credential.id}/rename/").status_code == 404
    assert client.get(f"/e/lab/credentials/{credential.id}/rename/").status_code == 404


def test_the_list_is_searchable_and_sortable(client, env, director):
    make_credential(make_client(env, name="Billing"), name="Zeta")
    make_credential(make_client(env, name="EHR"), name="Alpha")
    page = client.get("/e/clinic/credentials/?q=billing").content.decode()
    assert "Zeta" in page and "Alpha" not in page
    page = client.get("/e/clinic/credentials/?sort=name").content.decode()
    assert page.index("Alpha") < page.index("Zeta")
    page = client.get("/e/clinic/credentials/?sort=-name").content.decode()
    assert page.index("Zeta") < page.index("Alpha")
