"""Who may read patient data in the portal (payloads, response bodies), and the record that they did.

Delivery bodies carry whatever the environment's records hold, in health care patient data: each time the
portal shows one, the audit trail says who looked at which, so the audit log can answer "who saw this"
(filter the action `patient_data`). VIEWERS_SEE_PAYLOADS=off shows Viewers metadata only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from environments.access import VIEWER
from environments.audit import record_audit
from environments.models import Environment
from portal.actor import Actor

VIEWED = "patient_data.viewed"


def may_see_payloads(role: str | None) -> bool:
    """Whether someone of `role` in an environment sees bodies, or metadata only (ids, times, statuses)."""
    return role is not None and (role != VIEWER or settings.VIEWERS_SEE_PAYLOADS)


def record_view(actor: Actor, target: models.Model, environment: Environment, what: str) -> None:
    """Audit that `actor` was shown `what` (such as "request and response bodies") of `target`."""
    record_audit(actor, VIEWED, target=target, environment=environment, details={"shown": what})
