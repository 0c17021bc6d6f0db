"""The audit trail is append-only, carries who/what/where, and never carries secrets."""

import csv
import io

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from environments.audit import record_audit
from environments.models import AuditEvent, Grant
from environments.tests.factories import grant, make_environment, make_user
from portal.actor import SYSTEM_ACTOR, Actor

pytestmark = pytest.mark.django_db


def test_an_audit_event_records_actor_ip_user_agent_and_target():
    user = make_user("director")
    env = make_environment("clinic")
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140")
    request.user = user

    event = record_audit(
        Actor.from_request(request), "environment.renamed", target=env, environment=env, details={"to": "X"}
    )

    event.refresh_from_db()
    assert (event.actor_type, event.actor_user, event.actor_label) == ("user", user, "director")
    assert (event.ip, event.user_agent) == ("203.0.113.7", "Firefox/140")
    assert (event.target_type, event.target_id, event.target_label) == (
        "environments.environment",
        str(env.pk),
        "Clinic",
    )
    assert event.details == {"to": "X"}


def test_background_work_is_attributed_to_the_system():
    event = record_audit(SYSTEM_ACTOR, "deliveries.pruned")
    assert (event.actor_type, event.actor_label, event.ip) == ("system", "system", None)


def test_audit_events_cannot_be_changed_or_deleted_through_the_orm():
    event = record_audit(SYSTEM_ACTOR, "something.happened")
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.all().update(action="rewritten")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "something.happened"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_postgresql_refuses_rewriting_the_trail_even_in_raw_sql():
    event = record_audit(SYSTEM_ACTOR, "something.happened")
    for statement in (
        "UPDATE environments_auditevent SET action = 'rewritten' WHERE id = %s",
        "DELETE FROM environments_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "something.happened"


@pytest.mark.parametrize("key", ["client_secret", "password", "access_token", "nested"])
def test_details_that_look_like_secrets_are_refused(key):
    details = {"nested": {"signing_key": "x"}} if key == "nested" else {key: "x"}
    with pytest.raises(ValueError, match="must not carry secrets"):
        record_audit(SYSTEM_ACTOR, "credential.created", details=details)
    assert not AuditEvent.objects.exists()


class TestAuditPage:
    def setup_data(self):
        self.clinic = make_environment("clinic")
        self.lab = make_environment("lab")
        self.director = make_user("dana")
        grant(self.director, self.clinic, Grant.Role.PROGRAM_DIRECTOR)
        self.admin = make_user("root", admin=True)
        record_audit(Actor.for_user(self.director), "webhook.created", environment=self.clinic, target_label="Billing")
        record_audit(Actor.for_user(self.admin), "webhook.paused", environment=self.lab, target_label="Lab feed")

    def test_a_program_director_reads_only_their_environments(self, client):
        self.setup_data()
        client.force_login(self.director)
        response = client.get("/audit/")
        assert response.status_code == 200
        assert b"Billing" in response.content
        assert b"Lab feed" not in response.content

    def test_filters_by_environment_actor_action_and_date(self, client):
        self.setup_data()
        client.force_login(self.admin)
        assert b"Lab feed" not in client.get("/audit/?environment=clinic").content
        assert b"Billing" in client.get("/audit/?environment=clinic").content
        assert b"Billing" not in client.get("/audit/?actor=root").content
        assert b"Lab feed" in client.get("/audit/?action=webhook.paused").content
        assert b"Lab feed" in client.get("/audit/?action=webhook").content
        assert b"No audit events match" in client.get("/audit/?since=2999-01-01").content

    def test_a_reversed_date_range_is_explained(self, client):
        self.setup_data()
        client.force_login(self.admin)
        response = client.get("/audit/?since=2026-02-01&until=2026-01-01")
        assert "“From” must be on or before “To”." in response.content.decode()

    def test_a_viewer_cannot_read_the_audit_log(self, client):
        self.setup_data()
        viewer = make_user("vic")
        grant(viewer, self.clinic, Grant.Role.VIEWER)
        client.force_login(viewer)
        response = client.get("/audit/")
        assert response.status_code == 403
        assert b"The audit log is for Admins and Program Directors." in response.content

    def test_csv_export_follows_the_filters(self, client):
        self.setup_data()
        record_audit(Actor.for_user(self.admin), "user.renamed", target_label='=HYPERLINK("http://x")')
        client.force_login(self.admin)

        response = client.get("/audit/export.csv?environment=clinic")
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        content = b"".join(response.streaming_content).decode()
        assert content.startswith("\ufeffoccurred_at,")  # a BOM: spreadsheets read UTF-8 as UTF-8
        rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
        assert {r["environment"] for r in rows} == {"clinic"}
        assert ("dana", "webhook.created", "Billing") in [(r["actor"], r["action"], r["target"]) for r in rows]
        assert "Lab feed" not in {r["target"] for r in rows}

        everything = b"".join(client.get("/audit/export.csv").streaming_content).decode()
        assert "'=HYPERLINK" in everything  # neutralised for spreadsheets


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t=", "\r=", "\n=", " ="])
def test_the_csv_export_neutralises_every_formula_start(client, start):
    admin = make_user("root", admin=True)
    record_audit(Actor.for_user(admin), "user.created", target_label=f'{start}HYPERLINK("http://x")')
    client.force_login(admin)
    content = b"".join(client.get("/audit/export.csv").streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(content)))
    label = next(row["target"] for row in rows if row["action"] == "user.created")
    assert label == f'\'{start}HYPERLINK("http://x")'


def test_the_ip_column_shows_where_an_api_client_called_from(client):
    from credentials.oauth import issue_token
    from credentials.tests.factories import make_client, make_credential

    env = make_environment("clinic")
    api_client = make_client(env, scopes=["patients:read"])
    credential, _ = make_credential(api_client)
    issue_token(api_client, credential, None, ip="203.0.113.9")
    client.force_login(make_user("root", admin=True))
    page = client.get("/audit/?action=token.issued").content.decode()
    assert "<td>203.0.113.9</td>" in page
