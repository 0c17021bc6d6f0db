"""A recovery (bulk re-send) job's own page: what became of each delivery it covers, as it happens."""

from django.shortcuts import get_object_or_404, render

from environments.views.decorators import environment_page

from .. import bulk
from ..bulk_outcomes import Outcomes
from ..models import BulkResend
from .portal import webhook_of


@environment_page
def recovery_page(request, environment, webhook_id, job_id):
    """The job's progress and outcomes by kind; refreshes itself until every delivery has an outcome."""
    webhook = webhook_of(environment, webhook_id)
    job = get_object_or_404(BulkResend, pk=job_id, webhook=webhook)
    return render(
        request,
        "webhooks/recovery.html",
        {
            "section": "webhooks",
            "webhook": webhook,
            "job": job,
            "outcomes": Outcomes.of(job),
            "what": bulk.STATUS_CHOICES.get(job.status_filter, job.status_filter),
            "running": job.state != BulkResend.State.DONE,
        },
    )
