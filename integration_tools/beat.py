"""Celery beat that sends the periodic tasks only while it holds the database's beat lease, so that starting
beat on every worker host (docker-compose's or `celery worker --beat`) runs the schedule once."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections

logger = logging.getLogger(__name__)


class LeasedScheduler(PersistentScheduler):
    """A beat whose ticks send nothing unless it holds the lease (environments/beat_lease.py); one that does not
    looks again every third of the lease, so it takes over within 1⅓ leases of the holder's last renewal."""

    def __init__(self, *args, **kwargs):
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        from environments.beat_lease import hold

        lease = settings.BEAT_LEASE_SECONDS
        close_old_connections()
        try:
            held = hold(self.holder, lease)
        except DatabaseError:
            logger.warning("beat could not reach the database to hold its lease; sending nothing", exc_info=True)
            held = False
        if held != self.held:
            logger.info("beat %s %s the lease", self.holder, "holds" if held else "no longer holds")
            self.held = held
        if not held:
            return lease / 3
        return min(super().tick(*args, **kwargs), lease / 3)

    def close(self) -> None:
        from environments.beat_lease import release

        super().close()
        if self.held:
            try:
                release(self.holder)
            except DatabaseError:
                logger.warning("beat could not give its lease up; another takes over when it runs out")
