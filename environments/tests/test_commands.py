"""Ops commands: clear output, `--json` for scripts, one line and exit 1 on a user error."""

import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import BASE_DIR, subprocess_env
from environments.demo import DEMO_SCHEMA
from environments.models import AuditEvent, ConfigurationVersion, Environment, Event, Grant, Record
from environments.records import create_record
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_bootstrap_demo_builds_the_sandbox_and_is_idempotent(monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-password-123")
    first = json.loads(run("bootstrap_demo", "--json"))
    assert "environment sandbox-test" in first["created"]
    assert first["admin_password"] is None  # chosen, so not printed

    counts = [m.objects.count() for m in (Environment, Record, Event, AuditEvent, ConfigurationVersion)]
    second = run("bootstrap_demo")
    assert second.strip() == "The demo is already in place; nothing changed."
    assert [m.objects.count() for m in (Environment, Record, Event, AuditEvent, ConfigurationVersion)] == counts

    live = Environment.objects.get(slug="sandbox-live")
    assert live.configuration.slug == "sandbox"
    assert live.published_version.number == 1
    assert Record.objects.filter(environment=live, data_type="patients").count() == 3


def test_bootstrap_demo_prints_a_generated_admin_password_once(monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    output = run("bootstrap_demo")
    assert "Admin user: admin  password: " in output
    assert "password" not in run("bootstrap_demo")


def test_publish_configuration_publishes_a_file(tmp_path):
    make_environment("clinic")
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(DEMO_SCHEMA))
    result = json.loads(run("publish_configuration", str(path), "--environment", "clinic", "--json"))
    assert result["version"] == 2
    assert result["environments"] == ["clinic"]
    assert result["data_types"] == ["assessments", "patients", "workers"]
    assert Environment.objects.get(slug="clinic").published_version.number == 2


def test_publish_configuration_says_what_changes_for_integrators(tmp_path):
    make_environment("clinic")
    stricter = json.loads(json.dumps(DEMO_SCHEMA))
    stricter["data_types"]["patients"]["fields"]["nickname"] = {"type": "string"}
    del stricter["data_types"]["assessments"]
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(stricter))

    said = run("publish_configuration", str(path), "--environment", "clinic")

    assert "What changes for integrators:\n  breaking   assessments: data type removed\n" in said
    assert "  compatible patients.nickname: field added" in said
    path.write_text(json.dumps(stricter))
    again = json.loads(run("publish_configuration", str(path), "--environment", "clinic", "--json"))
    assert again["changes"] == []
    assert "Nothing changes for integrators." in run("publish_configuration", str(path), "--environment", "clinic")


@pytest.mark.parametrize(
    ("content", "environment", "message"),
    [
        (
            "{oops",
            "clinic",
            "the document is refused: not valid JSON: Expecting property name enclosed in double quotes",
        ),
        (json.dumps({"data_types": {}}), "clinic", 'is not a valid schema: data type "patients": the built-in'),
        (json.dumps(DEMO_SCHEMA), "nowhere", "unknown environment: nowhere"),
    ],
)
def test_publish_configuration_refuses_bad_input_and_changes_nothing(tmp_path, content, environment, message):
    make_environment("clinic")
    path = tmp_path / "schema.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        run("publish_configuration", str(path), "--environment", environment)
    assert ConfigurationVersion.objects.count() == 1


def test_publish_configuration_refuses_to_leave_records_invalid_unless_told_to(tmp_path):
    env = make_environment("clinic")
    create_record(env, "patients", {"first_name": "Mary", "last_name": "Shelley", "status": "discharged"})
    document = json.loads(json.dumps(DEMO_SCHEMA))
    document["data_types"]["patients"]["fields"]["status"]["choices"] = ["active"]
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError) as refused:
        run("publish_configuration", str(path), "--environment", "clinic", "--json")
    assert str(refused.value) == (
        "publishing would leave 1 existing record invalid: clinic: 1 patients record (fields: status 1); "
        "nothing was published (add --accept-invalid-records to publish anyway)"
    )
    assert ConfigurationVersion.objects.count() == 1

    result = json.loads(
        run("publish_configuration", str(path), "--environment", "clinic", "--accept-invalid-records", "--json")
    )
    assert result["version"] == 2
    assert result["invalid_records"] == {
        "clinic": {"patients": {"records": 1, "fields": {"status": {"records": 1, "example": "must be one of active"}}}}
    }


def test_publish_configuration_names_a_missing_file():
    with pytest.raises(CommandError, match="cannot read /no/such/file.json: No such file or directory"):
        run("publish_configuration", "/no/such/file.json", "--environment", "clinic")


def test_a_command_error_is_one_line_and_exit_status_1(transactional_db, tmp_path):
    path = tmp_path / "schema.json"
    path.write_text("[1, 2")
    result = subprocess.run(
        [sys.executable, "manage.py", "publish_configuration", str(path), "--environment", "clinic"],
        cwd=BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {path}: the document is refused: not valid JSON: Expecting ',' delimiter at line 1, column 6"
    ]


def test_grant_access_creates_a_user_with_a_role_in_one_environment():
    env = make_environment("clinic")
    result = json.loads(run("grant_access", "vic", "--role", "viewer", "--environment", "clinic", "--create", "--json"))
    assert len(result["password"]) >= 16
    grant = Grant.objects.get(user__username="vic")
    assert (grant.environment, grant.role) == (env, "viewer")
    assert AuditEvent.objects.filter(action="user.role_granted", environment=env).exists()


def test_grant_access_explains_what_is_missing():
    make_environment("clinic")
    with pytest.raises(CommandError, match='no user "ghost"; add --create to create it'):
        run("grant_access", "ghost", "--role", "viewer", "--environment", "clinic")
    with pytest.raises(CommandError, match="--environment is required for the viewer role"):
        run("grant_access", "ghost", "--role", "viewer", "--create")
    assert not Grant.objects.exists()
