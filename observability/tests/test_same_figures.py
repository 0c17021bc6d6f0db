"""/metrics, the Overview and `manage.py integration_health` read the same functions: their figures agree."""

import json
import re

import pytest
from django.urls import reverse

from conftest import manage_py
from environments.tests.factories import make_user

from .test_metrics import of, scrape


@pytest.mark.django_db(transaction=True)
def test_waiting_oldest_due_and_condition_agree_on_all_three(client, seeded):
    samples = scrape(client)
    health = json.loads(manage_py("integration_health", "--environment", "clinic", "--json").stdout)
    client.force_login(make_user(admin=True))
    page = client.get("/e/clinic/").content.decode()
    conditions = {"healthy": "active"}
    for row in health:
        webhook = str(row["id"])
        waiting = of(samples, "integration_webhook_deliveries_waiting", environment="clinic", webhook=webhook)
        assert row["waiting"] == waiting
        history = reverse("webhook_history", args=["clinic", row["id"]])
        assert re.search(rf'href="{re.escape(history)}\?status=retrying">{int(waiting)}<', page), row["webhook"]
        oldest = of(samples, "integration_webhook_oldest_due_seconds", environment="clinic", webhook=webhook)
        assert row["oldest_due_seconds"] == pytest.approx(oldest, abs=5)
        condition = conditions.get(row["state"], row["state"])
        assert of(samples, "integration_webhook_condition", environment="clinic", webhook=webhook, condition=condition)
    total = sum(row["waiting"] for row in health)
    assert f"{total} deliveries waiting." in page
    assert {row["state"] for row in health} == {"healthy", "failing", "paused"}
