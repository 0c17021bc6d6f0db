"""LOG_FORMAT=json: one JSON object a line, each with the correlation fields of what it is about."""

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings as django_settings

from conftest import wait_for
from environments.records import create_record
from environments.tests.factories import make_environment
from portal.log_context import CorrelationFilter
from webhooks.models import Delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

SECRET = "whsec_must_not_appear"


@pytest.fixture
def json_lines():
    """Records of this process, written by the JSON formatter and filter LOG_FORMAT=json configures."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.config.DictConfigurator({}).configure_custom(
            {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s"}
        )
    )
    handler.addFilter(CorrelationFilter())
    logging.getLogger().addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.mark.django_db
def test_a_request_s_lines_carry_its_request_id_and_environment(client, json_lines):
    make_environment("clinic")
    answer = client.get("/e/clinic/no-such-page/", HTTP_X_REQUEST_ID="proxy-given-id-42")
    assert answer["X-Request-ID"] == "proxy-given-id-42"
    [line] = [line for line in json_lines() if line["name"] == "django.request"]
    assert line["request_id"] == "proxy-given-id-42" and line["environment"] == "clinic"
    # An id that does not look like one is replaced, and every request has one.
    answer = client.get("/e/clinic/no-such-page/", HTTP_X_REQUEST_ID='bad"id')
    assert answer["X-Request-ID"] != 'bad"id' and len(answer["X-Request-ID"]) == 32


def test_a_record_never_carries_an_attribute_named_like_a_secret(json_lines):
    logging.getLogger("observability.test").warning("sent", extra={"authorization": SECRET, "webhook_id": 7})
    [line] = json_lines()
    assert line["webhook_id"] == 7 and SECRET not in json.dumps(line)


def test_every_format_puts_the_correlation_fields_on_records():
    # LOG_FORMAT is read at start: a process started with LOG_FORMAT=json writes them (the worker test below).
    console: dict = django_settings.LOGGING["handlers"]["console"]  # type: ignore[index]
    assert "correlation" in console["filters"]


def test_a_worker_s_delivery_lines_carry_the_task_webhook_and_delivery(start_worker, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    worker = start_worker(LOG_FORMAT="json")
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        wait_for(lambda: receiver.requests, timeout=30, message="the delivery")
    delivery = Delivery.objects.get(webhook=webhook)

    def delivery_lines() -> list[dict]:
        lines = [json.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("delivery_id") == str(delivery.pk)]

    wait_for(delivery_lines, timeout=10, message="a log line about the delivery")
    line = delivery_lines()[0]
    assert line["webhook_id"] == str(webhook.pk) and line["webhook-id"] == delivery.message_id
    assert line["environment"] == "clinic" and line["task"].startswith("webhooks.") and line["task_id"]
    text = worker.log_path.read_text()
    assert webhook.plain_secret not in text and "Lovelace" not in text  # no secret, no payload
    print(json.dumps(line))  # shown with -s: what an operator's log search gets


@pytest.mark.django_db
def test_a_command_s_lines_carry_its_name_run_and_environment(json_lines):
    from django.core.management import call_command

    from portal import log_context

    make_environment("clinic")
    with pytest.raises(SystemExit):  # 1: no worker runs here (the command's alert for cron)
        call_command(
            "integration_health", "--environment", "clinic", "--json", stdout=io.StringIO(), stderr=io.StringIO()
        )
    # What the command bound is what its lines (and those of what it called) carry.
    fields = log_context.current()
    assert fields["command"] == "integration_health" and fields["environment"] == "clinic"
    assert len(fields["run_id"]) == 12
    logging.getLogger("observability.test").info("done")
    [line] = json_lines()
    assert line["command"] == "integration_health" and line["run_id"] == fields["run_id"]
