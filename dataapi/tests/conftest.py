"""Fixtures shared by the Data API's tests."""

import pytest


@pytest.fixture(scope="module")
def openapi_document(django_db_blocker):
    """The global OpenAPI document, as served."""
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/v1/openapi.json", HTTP_HOST="localhost")
    assert response.status_code == 200
    return response.json()
