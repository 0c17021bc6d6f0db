import pytest

from environments.tests.factories import log_in_director, make_environment


@pytest.fixture(autouse=True)
def loopback_receivers_allowed(settings):
    """Tests send to receivers on 127.0.0.1, which production refuses."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def env():
    """The environment most webhook tests work in."""
    return make_environment("clinic")


@pytest.fixture
def director(client, env):
    """A Program Director of `env`, logged in on `client`."""
    return log_in_director(client, env, "director")
