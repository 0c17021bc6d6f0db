import pytest


@pytest.fixture(autouse=True)
def loopback_receivers_allowed(settings):
    """The drills send to receivers on 127.0.0.1 (and on the namespaces' veth addresses), which production
    refuses."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32", "10.0.0.0/8"]
