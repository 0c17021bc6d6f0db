"""The Celery application shared by the worker, beat and the web process."""

import logging
import os
import socket
import threading

from celery import Celery
from celery.signals import task_prerun, worker_ready, worker_shutdown

from .embedded_broker import register as register_embedded_broker

# Before the app first connects: `make run`'s default broker URL is embedded://.
register_embedded_broker()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_tools.settings")

app = Celery("integration_tools")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_periodic_tasks(sender: Celery, **kwargs) -> None:
    """Register beat jobs here, next to the app, so one place lists them all."""
    from django.conf import settings

    sender.add_periodic_task(
        settings.WEBHOOK_SWEEP_SECONDS,
        sender.signature("webhooks.sweep"),
        name="re-enqueue due webhook deliveries",
    )
    sender.add_periodic_task(
        settings.EVENT_SEQUENCE_SECONDS, sender.signature("environments.sequence"), name="place events in streams"
    )
    sender.add_periodic_task(
        settings.WEBHOOK_HEARTBEAT_SCAN_SECONDS,
        sender.signature("webhooks.heartbeats"),
        name="send heartbeats to quiet webhooks",
    )
    sender.add_periodic_task(24 * 3600, sender.signature("webhooks.prune"), name="prune old deliveries")
    sender.add_periodic_task(3600, sender.signature("webhooks.partitions"), name="make partitions ahead")
    sender.add_periodic_task(3600, sender.signature("environments.retention"), name="prune and erase old events")
    sender.add_periodic_task(300, sender.signature("webhooks.roll_up"), name="count attempts per hour")
    sender.add_periodic_task(
        3600, sender.signature("credentials.prune_failures"), name="prune old token endpoint failures"
    )
    sender.add_periodic_task(3600, sender.signature("people.prune_sign_ins"), name="prune old sign-in attempts")
    sender.add_periodic_task(3600, sender.signature("people.end_lapsed_sessions"), name="end lapsed sessions")
    sender.add_periodic_task(
        settings.NOTIFICATIONS_SCAN_SECONDS, sender.signature("notifications.scan"), name="tell people what happened"
    )


logger = logging.getLogger(__name__)
_stop_liveness = threading.Event()


@worker_ready.connect
def report_in_at_start(sender=None, **kwargs) -> None:
    """Report at once, so the Overview shows a fresh worker without waiting a beat interval, and start the
    process's own liveness report."""
    from webhooks.delivery import inflight

    # From now on a request whose receiver is slow waits on an I/O thread, not on a worker thread.
    inflight.enable()
    sender.app.send_task("environments.tasks.record_worker_heartbeat")
    threading.Thread(target=_report_alive_until_shutdown, name="worker-liveness", daemon=True).start()


@worker_shutdown.connect
def stop_reporting_alive(**kwargs) -> None:
    """Stop reporting, and let requests still waiting for their receivers end and be recorded (each ends
    within its webhook's timeout); any left are recorded by the sweeper, outcome unknown."""
    from django.conf import settings

    from webhooks.delivery import inflight

    _stop_liveness.set()
    left = inflight.finish(timeout=settings.WEBHOOK_TIMEOUT_SECONDS_MAX + 5)
    if left:
        logger.warning("%d webhook requests were still waiting for their receivers at shutdown", left)


def _report_alive_until_shutdown() -> None:
    """Every heartbeat interval, two reports from this worker process, neither needing beat: that the process
    runs (written from this thread, which a long queue does not delay), and a heartbeat task through the queue
    (written when a worker reaches it, which proves the queue is consumed). Pages tell stopped from busy by them.
    """
    from django.conf import settings
    from django.db import connection

    from environments.workers import report_alive

    hostname = socket.gethostname()
    while not _stop_liveness.wait(settings.WORKER_HEARTBEAT_SECONDS):
        try:
            report_alive(hostname)
            app.send_task("environments.tasks.record_worker_heartbeat", (hostname,))
        except Exception as error:  # noqa: BLE001 - a missed report must not end the thread; the next one may work
            logger.warning("worker liveness report failed: %s", type(error).__name__)
        finally:
            connection.close()


@task_prerun.connect
def drop_stale_database_connections(**kwargs) -> None:
    """Drop a broken or over-age connection before each task, as Django does before each request.

    CELERY_DB_REUSE_MAX keeps Celery from closing the connection after every task.
    """
    from django.db import close_old_connections

    close_old_connections()
