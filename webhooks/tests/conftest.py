import copy

import pytest

from environments.configurations import publish_version, save_draft
from environments.demo import DEMO_SCHEMA
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


@pytest.fixture
def test_and_live():
    """Live runs version 1 of the clinic's schema; Test already runs version 2, which adds visits and a nickname."""
    live = make_environment("live-clinic", kind="live")
    test = make_environment("test-clinic", configuration=live.configuration)
    newer = copy.deepcopy(DEMO_SCHEMA)
    newer["data_types"]["patients"]["fields"]["nickname"] = {"type": "string"}
    newer["data_types"]["visits"] = {"fields": {"when": {"type": "datetime"}}}
    publish_version(save_draft(live.configuration, newer), [test])
    test.refresh_from_db()
    return test, live
