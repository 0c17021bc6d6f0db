from webhooks.tests.conftest import loopback_receivers_allowed  # noqa: F401 - the same receivers on 127.0.0.1
