"""A webhook's claim lock held by another connection, as a claiming worker or a long transaction holds it."""

import contextlib
import threading

from django.db import connections

from webhooks.delivery import ledger


@contextlib.contextmanager
def claim_lock_held_elsewhere(webhook):
    """The webhook's claim lock, held by another connection (a claiming worker, or a change's transaction)."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        connection = connections.create_connection("default")
        try:
            with connection.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ledger._ADVISORY_LOCK_SPACE, webhook.pk])
                locked.set()
                release.wait(timeout=30)
                cursor.execute("COMMIT")
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        yield
    finally:
        release.set()
        holder.join(timeout=30)
