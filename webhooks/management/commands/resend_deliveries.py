import time

from django.core.management.base import CommandError

from portal.commands import PortalCommand
from webhooks.bulk import RECOVER, STATUS_CHOICES, Selection, bulk_resend_step, preview, start_bulk_resend
from webhooks.bulk_outcomes import Outcomes, covered
from webhooks.management import lookups
from webhooks.models import BulkResend


class Command(PortalCommand):
    help = (
        "Re-send a webhook's deliveries in a status (failed by default) created in [--since, --until), "
        "with their original webhook-id. Runs here unless --background."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("--webhook", required=True, help="Webhook id, or <environment>/<name>.")
        parser.add_argument(
            "--status",
            default=RECOVER,
            choices=list(STATUS_CHOICES),
            help="recover (default): failed or waiting for a retry; or one finished status.",
        )
        parser.add_argument("--event-type", default="", help="Only deliveries carrying this event type.")
        parser.add_argument("--since", help="ISO 8601; UTC unless an offset is given.")
        parser.add_argument("--until", help="ISO 8601; UTC unless an offset is given.")
        parser.add_argument("--background", action="store_true", help="Queue the work for the Celery workers.")

    def handle(self, *args, **options):
        webhook = lookups.webhook(options["webhook"])
        try:
            selection = Selection(
                webhook,
                status=options["status"],
                since=lookups.moment(options["since"], "--since"),
                until=lookups.moment(options["until"], "--until"),
                event_type=options["event_type"],
            )
            job = start_bulk_resend(selection, actor=self.actor)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if not options["background"]:
            # Workers may take chunks of the same job too; the lease keeps them apart.
            while job.state != BulkResend.State.DONE:
                countdown = bulk_resend_step(job.pk)
                # None: a worker holds the job for now; a countdown: others are sending some of its deliveries.
                time.sleep(0.2 if countdown is None else countdown)
                job.refresh_from_db()
        outcomes = Outcomes.of(job)
        data = {
            "job": job.pk,
            "state": job.state,
            "total": job.total,
            "done": outcomes.done,
            "received": outcomes.delivered,
            "delivered_by_job": outcomes.by_job,
            "delivered_meanwhile": outcomes.meanwhile,
            "failed_again": outcomes.failed_again,
            "skipped": dict(outcomes.skipped_reasons),
        }
        if not job.total:
            why = preview(Selection.of(job)).why_none
            self.report({**data, "why": why}, why)
            return
        text = (
            f"Queued {job.total} deliveries of {webhook.name} for re-sending (job {job.pk})."
            if options["background"]
            else f"Re-sent {covered(job.total)} of {webhook.name}: {outcomes.summary()}."
        )
        self.report(data, text)
