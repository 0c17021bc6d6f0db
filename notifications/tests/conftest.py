import pytest

from webhooks.tests.conftest import loopback_receivers_allowed  # noqa: F401 - autouse fixture


@pytest.fixture(autouse=True)
def email_framework(settings):
    """E-mail through Django's in-memory backend (pytest-django's `mailoutbox`), links to a known portal."""
    settings.PORTAL_URL = "https://portal.example.org"
