"""A real Celery worker with beat runs against the real broker and database."""

import datetime
import json

import pytest
from django.utils import timezone

from conftest import kill_process_group, manage_py, wait_for
from environments.models import WorkerHeartbeat, WorkerOutage
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from environments.workers import report_in
from notifications.models import Notice
from notifications.tests.factories import make_failing_webhook
from webhooks.tests.conftest import loopback_receivers_allowed  # noqa: F401 - autouse fixture
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver


def test_a_running_worker_reports_in_and_the_overview_says_so(celery_worker_process, client):
    make_environment("clinic")

    beat = wait_for(
        lambda: WorkerHeartbeat.objects.first(),
        timeout=60,
        interval=0.25,
        message=f"a worker heartbeat (log: {celery_worker_process.log_path})",
    )
    assert celery_worker_process.poll() is None, celery_worker_process.log_path.read_text()

    # Beat keeps scheduling: the heartbeat moves forward while the worker runs.
    first_seen = beat.last_seen
    wait_for(
        lambda: WorkerHeartbeat.objects.get(pk=beat.pk).last_seen > first_seen,
        timeout=30,
        interval=0.25,
        message="a second heartbeat",
    )

    client.force_login(make_user(admin=True))
    page = client.get("/e/clinic/").content.decode()
    assert '<span class="badge ok">running</span>' in page
    assert beat.hostname in page


# --- A dead worker is loud ------------------------------------------------------------

BANNER = "Background worker not running: nothing is being sent"


def reported(seconds_ago: float, hostname: str = "worker-1") -> WorkerHeartbeat:
    """A worker that last reported `seconds_ago` (what the heartbeat task writes)."""
    return WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"last_seen": timezone.now() - datetime.timedelta(seconds=seconds_ago)}
    )[0]


@pytest.mark.django_db
def test_every_page_says_nothing_is_being_sent_once_no_worker_has_reported_for_a_minute(client):
    env = make_environment("clinic")
    webhook = make_webhook(env, "http://127.0.0.1:9999/hook")
    client.force_login(make_user(admin=True))
    pages = [
        "/e/clinic/",
        "/e/clinic/webhooks/",
        f"/e/clinic/webhooks/{webhook.pk}/",
        "/e/clinic/deliveries/",
        "/e/clinic/credentials/",
        "/audit/",
        "/configurations/",
        "/notifications/",
        "/account/",
    ]

    reported(seconds_ago=50)
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert BANNER not in response.content.decode(), path

    reported(seconds_ago=61)
    for path in pages:
        assert BANNER in client.get(path).content.decode(), path

    # The first report after the silence takes the banner away.
    report_in("worker-1")
    assert BANNER not in client.get("/e/clinic/").content.decode()


@pytest.mark.django_db
def test_a_portal_where_no_worker_ever_reported_says_so(client):
    make_environment("clinic")
    client.force_login(make_user(admin=True))
    page = client.get("/e/clinic/").content.decode()
    assert BANNER in page
    assert "No worker has reported in yet" in page


@pytest.mark.django_db
def test_the_overview_puts_the_stopped_worker_first_under_needs_attention(client):
    env = make_environment("clinic")
    make_failing_webhook(env, name="Bridge")
    reported(seconds_ago=600)
    client.force_login(make_user(admin=True))

    page = client.get("/e/clinic/").content.decode()
    attention = page[page.index('id="attention-heading"') :]
    attention = attention[: attention.index("</section>")]
    assert attention.index(BANNER) < attention.index("Bridge")
    assert "Last report 10" in attention and "minutes ago" in attention


@pytest.mark.django_db
def test_pages_that_promise_background_work_say_it_is_not_happening_while_no_worker_runs(client):
    env = make_environment("clinic")
    webhook = make_webhook(env, "http://127.0.0.1:9999/hook")
    client.force_login(make_user(admin=True))

    reported(seconds_ago=1)
    assert "in the background" in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()

    reported(seconds_ago=120)
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert "in the background" not in page
    assert "none is running now, so this is not happening yet" in page

    # A test delivery asked for now waits for a worker: the page says so instead of "Sending…" for ever.
    waiting = client.get(client.post(f"/e/clinic/webhooks/{webhook.pk}/test/")["Location"]).content.decode()
    assert "Sending…" not in waiting
    assert "no background worker is running, so it is not happening yet" in waiting


@pytest.mark.django_db(transaction=True)
def test_integration_health_exits_1_while_no_worker_runs():
    make_environment("clinic")

    reported(seconds_ago=5)
    healthy = manage_py("integration_health")
    assert healthy.returncode == 0, healthy.stderr

    reported(seconds_ago=90)
    stopped = manage_py("integration_health", "--json")
    assert stopped.returncode == 1
    assert json.loads(stopped.stdout) == []  # the JSON keeps its shape for scripts
    assert stopped.stderr.strip().startswith(f"{BANNER} (last report ")


@pytest.mark.django_db(transaction=True)
def test_admins_are_told_once_the_worker_is_back_how_long_it_was_out_and_how_much_waited(
    start_worker, settings, client, tmp_path
):
    settings.WORKER_SILENT_AFTER_SECONDS = 3
    silent = {"WORKER_SILENT_AFTER_SECONDS": "3", "NOTIFICATIONS_SCAN_SECONDS": "0.5"}
    env = make_environment("clinic")
    admin = make_user("admin", admin=True)
    director = make_user("director")
    grant(director, env)
    client.force_login(admin)

    with Receiver() as receiver:
        make_webhook(env, receiver.url, event_types=["patients.created"])
        first = start_worker(**silent)
        wait_for(lambda: WorkerHeartbeat.objects.exists(), timeout=60, message="the first worker reports in")
        kill_process_group(first)

        # While no worker runs, two changes are made: nothing can send them.
        create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        create_record(env, "patients", {"first_name": "Grace", "last_name": "Hopper"})
        wait_for(lambda: BANNER in client.get("/e/clinic/").content.decode(), timeout=15, message="the banner")
        assert receiver.requests == []

        start_worker(**silent)
        wait_for(lambda: len(receiver.requests) == 2, timeout=60, message="both deliveries after the restart")
        notice = wait_for(
            lambda: Notice.objects.filter(user=admin, kind="worker_back").first(), timeout=60, message="the notice"
        )

    assert BANNER not in client.get("/e/clinic/").content.decode()
    assert notice.subject.startswith("The background worker is back after ")
    assert "The 2 deliveries made in that time, and any retries that fell due, waited in the database" in notice.body
    # The portal as a whole is the Admins' business: a Program Director is not told.
    assert not Notice.objects.filter(user=director, kind="worker_back").exists()
    assert WorkerOutage.objects.count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [390, 1440])
def test_the_banner_is_the_first_thing_on_the_page_at_phone_and_desktop_width(page, width, tmp_path):
    make_environment("clinic")
    make_user("root", admin=True)
    reported(seconds_ago=300)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root")
    page.goto("/e/clinic/")

    banner = page.get_by_role("region", name="Background worker", exact=True)
    assert BANNER in banner.inner_text()
    assert "(5 minutes ago)" in banner.inner_text().replace("\xa0", " ")
    # First inside the main content, above the page's heading; words, not colour alone; nothing overflows.
    assert banner.bounding_box()["y"] < page.get_by_role("heading", level=1).bounding_box()["y"]
    assert banner.locator("strong").inner_text() == f"{BANNER}."
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(tmp_path / f"banner-{width}.png"), full_page=False)

    report_in("worker-1")
    page.reload()
    assert page.get_by_role("region", name="Background worker", exact=True).count() == 0


# --- Busy is not stopped ------------------------------------------------------------------

BUSY = "Background worker busy: deliveries are delayed"


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_queue_is_slow_is_called_busy_not_stopped(client):
    env = make_environment("clinic")
    webhook = make_webhook(env, "http://127.0.0.1:9999/hook")
    client.force_login(make_user(admin=True))
    beat = reported(seconds_ago=120)  # its queue has not reached a heartbeat task for two minutes...
    WorkerHeartbeat.objects.filter(pk=beat.pk).update(alive_at=timezone.now())  # ...but the process runs

    overview = client.get("/e/clinic/").content.decode()
    assert BUSY in overview and BANNER not in overview
    # Work asked for now is delayed, not stopped: the pages do not claim it is not happening.
    assert "in the background" in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    busy = manage_py("integration_health")
    assert busy.returncode == 1
    assert busy.stderr.strip().startswith(f"{BUSY} (last report ")

    # The queue reaches the heartbeat again: no outage was recorded, so Admins are not told one ended.
    assert report_in("worker-1") is None
    assert WorkerOutage.objects.count() == 0
    assert BUSY not in client.get("/e/clinic/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_worker_reports_in_from_its_process_and_its_queue_without_beat(start_worker):
    # Beat down (or not started) is not a stopped worker: both reports come from the worker itself.
    make_environment("clinic")
    start_worker(beat=False)
    beat = wait_for(lambda: WorkerHeartbeat.objects.first(), timeout=60, message="the first report")
    first_seen = beat.last_seen
    wait_for(
        lambda: WorkerHeartbeat.objects.get(pk=beat.pk).alive_at is not None,
        timeout=30,
        interval=0.25,
        message="the worker process's own liveness report",
    )
    wait_for(
        lambda: WorkerHeartbeat.objects.get(pk=beat.pk).last_seen > first_seen,
        timeout=30,
        interval=0.25,
        message="a heartbeat through the queue, with no beat running",
    )
