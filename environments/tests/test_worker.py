"""A real Celery worker with beat runs against the real broker and database."""

from conftest import wait_for
from environments.models import WorkerHeartbeat
from environments.tests.factories import make_environment, make_user


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
