"""Small factories: each builds the least a test needs and says what it built."""

import itertools

from django.contrib.auth import get_user_model

from environments.configurations import create_configuration, create_environment, publish_version, save_draft
from environments.demo import DEMO_SCHEMA
from environments.models import Environment, Grant

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(username: str | None = None, *, admin: bool = False, password: str = PASSWORD):
    User = get_user_model()
    username = username or f"user{next(_counter)}"
    if admin:
        return User.objects.create_superuser(username, f"{username}@example.org", password)
    return User.objects.create_user(username, f"{username}@example.org", password)


def make_environment(slug: str | None = None, *, schema: dict | None = None, configuration=None, kind: str = "test"):
    """An environment with `schema` (the demo schema by default) published to it."""
    n = next(_counter)
    slug = slug or f"env-{n}"
    if configuration is None:
        configuration = create_configuration(f"Configuration {slug}", f"configuration-{slug}")
        version = save_draft(configuration, schema or DEMO_SCHEMA)
    else:
        version = configuration.versions.order_by("-number").first()
    environment = create_environment(slug.replace("-", " ").title(), slug, kind, configuration)
    if environment.published_version is None:
        publish_version(version, [environment])
        environment.refresh_from_db()
    return environment


def grant(user, environment: Environment, role: str = Grant.Role.PROGRAM_DIRECTOR):
    return Grant.objects.create(user=user, environment=environment, role=role)


def log_in_director(client, environment: Environment, username: str | None = None):
    """A Program Director of `environment`, logged in on the test `client`."""
    user = make_user(username)
    grant(user, environment)
    client.force_login(user)
    return user
