"""A real OAuth 2.0 client library, against the live server, over HTTP."""

import pytest
import requests
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from credentials.tests.factories import make_client, make_credential
from environments.records import create_record
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db(transaction=True)


def test_backend_application_client_fetches_a_token_and_reads_the_data_api(live_server, monkeypatch):
    # The live test server speaks plain HTTP on loopback; production sits behind TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    env = make_environment("clinic")
    create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"}, external_id="p-1")
    api_client = make_client(env, scopes=["patients:read"])
    _, secret = make_credential(api_client)

    session = OAuth2Session(client=BackendApplicationClient(client_id=api_client.client_id))
    token = session.fetch_token(
        token_url=f"{live_server.url}/oauth/token",
        auth=HTTPBasicAuth(api_client.client_id, secret),
        timeout=10,
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == ["patients:read"]

    response = session.get(f"{live_server.url}/api/v1/clinic/patients/?external_id=p-1", timeout=10)
    assert response.status_code == 200
    assert [r["fields"]["first_name"] for r in response.json()["data"]] == ["Ada"]

    anonymous = requests.get(f"{live_server.url}/api/v1/clinic/patients/", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
