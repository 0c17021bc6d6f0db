"""Demo data: a Sandbox configuration, two environments, an admin and a few records."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from portal.actor import SYSTEM_ACTOR, Actor
from portal.inputs import username_problem

from .configurations import ConfigurationError, create_configuration, create_environment, publish_version, save_draft
from .models import Configuration, Environment, Record
from .records import create_record

DEMO_SCHEMA = {
    "data_types": {
        "patients": {
            "label": "Patients",
            "fields": {
                "first_name": {"type": "string", "required": True, "max_length": 100},
                "last_name": {"type": "string", "required": True, "max_length": 100},
                "birth_date": {"type": "date"},
                "email": {"type": "email"},
                "status": {"type": "choice", "choices": ["active", "discharged"]},
            },
        },
        "workers": {
            "label": "Workers",
            "fields": {
                "name": {"type": "string", "required": True, "max_length": 200},
                "email": {"type": "email", "required": True},
                "role": {"type": "choice", "choices": ["care_manager", "physician", "coordinator"]},
            },
        },
        "assessments": {
            "label": "Assessments",
            "fields": {
                "patient_id": {"type": "string", "required": True},
                "score": {"type": "integer", "minimum": 0, "maximum": 27},
                "completed_at": {"type": "datetime"},
            },
        },
    }
}

DEMO_ENVIRONMENTS = (
    ("sandbox-test", "Sandbox Test", "test"),
    ("sandbox-live", "Sandbox Live", "live"),
)

DEMO_PATIENTS = (
    ("p-1001", {"first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10", "status": "active"}),
    ("p-1002", {"first_name": "Alan", "last_name": "Turing", "birth_date": "1982-06-23", "status": "active"}),
    ("p-1003", {"first_name": "Grace", "last_name": "Hopper", "birth_date": "1976-12-09", "status": "discharged"}),
)
DEMO_WORKERS = (
    ("w-01", {"name": "Dr. Mae Jemison", "email": "mae@example.org", "role": "physician"}),
    ("w-02", {"name": "Katherine Johnson", "email": "katherine@example.org", "role": "care_manager"}),
)


@dataclass
class DemoResult:
    created: list[str]
    admin_username: str
    admin_password: str | None  # set only when the admin was created with a generated password


def bootstrap_demo(
    admin_username: str = "admin", admin_password: str | None = None, *, actor: Actor = SYSTEM_ACTOR
) -> DemoResult:
    """Create whatever of the demo is missing; running it again changes nothing."""
    problem = username_problem(admin_username)
    if problem:
        raise ConfigurationError(f"the admin username {problem}")
    created: list[str] = []
    with transaction.atomic():
        configuration = Configuration.objects.filter(slug="sandbox").first()
        if configuration is None:
            configuration = create_configuration("Sandbox", "sandbox", actor=actor)
            created.append("configuration sandbox")
        version = configuration.versions.filter(state="published").order_by("-number").first()
        if version is None:
            version = save_draft(configuration, DEMO_SCHEMA, note="Demo schema", actor=actor)
            created.append(f"configuration version {version.number}")
        for slug, name, kind in DEMO_ENVIRONMENTS:
            environment = Environment.objects.filter(slug=slug).first()
            if environment is None:
                environment = create_environment(name, slug, kind, configuration, actor=actor)
                created.append(f"environment {slug}")
            if environment.published_version is None:
                publish_version(version, [environment], actor=actor)
                created.append(f"published version {version.number} to {slug}")
            created += _seed_records(environment)
        generated = None
        User = get_user_model()
        if not User.objects.filter(username=admin_username).exists():
            generated = None if admin_password else secrets.token_urlsafe(12)
            User.objects.create_superuser(admin_username, f"{admin_username}@example.org", admin_password or generated)
            created.append(f"admin user {admin_username}")
    return DemoResult(created=created, admin_username=admin_username, admin_password=generated)


def _seed_records(environment: Environment) -> list[str]:
    created = []
    for data_type, rows in (("patients", DEMO_PATIENTS), ("workers", DEMO_WORKERS)):
        for external_id, data in rows:
            if not Record.objects.filter(
                environment=environment, data_type=data_type, external_id=external_id
            ).exists():
                create_record(environment, data_type, data, external_id=external_id)
                created.append(f"{data_type} {external_id} in {environment.slug}")
    return created
