"""The Audit page over a long trail: pages by keyset, filters on indexes, and an export read in batches."""

import csv
import datetime
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from environments.audit import record_audit
from environments.audit_log import actions_matching, iter_csv
from environments.models import AuditEvent
from environments.tests.factories import make_environment, make_user
from portal.actor import SYSTEM_ACTOR, Actor

pytestmark = pytest.mark.django_db
MOMENT = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def trail(count: int, *, at=MOMENT, first: int = 0) -> list[str]:
    """`count` events of one moment (ties are what a keyset must not skip or repeat), as the past holds them."""
    labels = [f"event {n}" for n in range(first, first + count)]
    for label in labels:
        AuditEvent.objects.create(
            occurred_at=at, actor_type="system", actor_label="system", action="webhook.changed", target_label=label
        )
    return labels


def shown(page: str) -> list[str]:
    return re.findall(r'title="(event \d+)"', page)


def older_link(page: str) -> str | None:
    found = re.search(r'href="\?([^"]*)" rel="next">Older events', page)
    return found.group(1).replace("&amp;", "&") if found else None


def test_pages_go_back_by_keyset_showing_each_event_once_even_when_times_tie(client, settings):
    settings.AUDIT_PAGE_SIZE = 2
    labels = trail(5)
    client.force_login(make_user("root", admin=True))

    seen, query = [], "action=webhook"
    for _ in range(5):
        page = client.get(f"/audit/?{query}").content.decode()
        seen += shown(page)
        query = older_link(page)
        if query is None:
            break
    assert seen == list(reversed(labels))
    assert "action=webhook" in older_link(client.get("/audit/?action=webhook").content.decode())


def test_a_page_link_that_is_not_ours_says_so_and_leads_back_to_the_newest(client):
    client.force_login(make_user("root", admin=True))
    page = client.get("/audit/?after=yesterday").content.decode()
    assert "This page link is out of date; start again from the newest events." in page
    assert 'href="?">Newest events</a>' in page


def test_an_action_filter_names_an_action_or_the_actions_it_prefixes():
    for action in ("patient_data.viewed", "sign_in.succeeded", "sign_in.failed", "sign_in_extra.x", "webhook.paused"):
        record_audit(SYSTEM_ACTOR, action)
    assert actions_matching("patient_data") == ["patient_data.viewed"]
    assert actions_matching("sign_in") == ["sign_in.failed", "sign_in.succeeded"]
    assert actions_matching("webhook.paused") == ["webhook.paused"]
    assert actions_matching("webhook.pau") == []


def test_patient_data_views_are_found_by_the_action_filter(client):
    env = make_environment("clinic")
    viewer = make_user("vic")
    record_audit(Actor.for_user(viewer), "patient_data.viewed", environment=env, target_label="delivery msg_1")
    record_audit(Actor.for_user(viewer), "webhook.paused", environment=env, target_label="Lab feed")
    client.force_login(make_user("root", admin=True))
    page = client.get("/audit/?action=patient_data").content.decode()
    assert "delivery msg_1" in page and "Lab feed" not in page


def test_dates_are_whole_days_from_the_first_to_the_last_day_given(client):
    trail(1, at=datetime.datetime(2026, 3, 1, 0, 0, tzinfo=datetime.UTC), first=1)
    trail(1, at=datetime.datetime(2026, 3, 2, 23, 59, 59, tzinfo=datetime.UTC), first=2)
    trail(1, at=datetime.datetime(2026, 3, 3, 0, 0, tzinfo=datetime.UTC), first=3)
    client.force_login(make_user("root", admin=True))
    assert shown(client.get("/audit/?since=2026-03-01&until=2026-03-02").content.decode()) == ["event 2", "event 1"]
    assert shown(client.get("/audit/?until=9999-12-31").content.decode()) == ["event 3", "event 2", "event 1"]


def test_the_export_reads_the_trail_in_keyset_batches_each_row_once():
    labels = trail(5)
    with CaptureQueriesContext(connection) as queries:
        content = "".join(iter_csv(AuditEvent.objects.all(), batch=2))
    rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    assert [row["target"] for row in rows] == list(reversed(labels))
    # Three short queries of at most 2 rows (no cursor held open between them: PgBouncer-safe).
    assert len(queries) == 3 and all("LIMIT 2" in query["sql"] for query in queries)


def test_by_actor_the_export_reads_growing_batches_of_keys_then_their_rows():
    labels = trail(11)
    with CaptureQueriesContext(connection) as queries:
        content = "".join(iter_csv(AuditEvent.objects.filter(actor_label__icontains="SYS"), batch=2, keys=8))
    rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    assert [row["target"] for row in rows] == list(reversed(labels))
    # Keys by keyset, growing from 2 to at most 8 (2, 8, then the last 1), and the rows by id, 2 at a time.
    keys = [query["sql"] for query in queries if "LIMIT" in query["sql"]]
    assert [re.search(r"LIMIT (\d+)", sql).group(1) for sql in keys] == ["2", "8", "8"]
    assert len(queries) - len(keys) == 6


def test_an_export_by_actor_has_that_actors_events_only(client):
    AuditEvent.objects.create(actor_type="user", actor_label="dana", action="webhook.paused", target_label="Lab")
    trail(3)
    client.force_login(make_user("root", admin=True))
    content = b"".join(client.get("/audit/export.csv?actor=DAN").streaming_content).decode("utf-8-sig")
    assert [row["target"] for row in csv.DictReader(io.StringIO(content))] == ["Lab"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram index is PostgreSQL's")
def test_the_actor_filter_is_served_by_the_trigram_index():
    from environments.audit_log import filter_audit

    query = filter_audit(AuditEvent.objects.all(), actor="Roo").order_by("-occurred_at", "-id")[:51]
    with connection.cursor() as cursor:
        # Small tables are read whole: forbid that, and the ordered index scan, to see the index applies.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "audit_actor_trigrams" in plan
