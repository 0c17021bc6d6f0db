"""Webhooks for tests, built through the same services the portal uses."""

import itertools

from webhooks.carry_out import carry_out
from webhooks.configure import WebhookFields, create_webhook
from webhooks.delivery.fanout import new_message_id
from webhooks.models import Delivery

_counter = itertools.count(1)


def make_webhook(environment, url: str, *, event_types=None, **options):
    """A webhook of `environment` posting to `url`; its `whsec_` secret is on `.plain_secret`."""
    fields = WebhookFields(
        name=options.pop("name", f"Hook {next(_counter)}"),
        url=url,
        event_types=event_types or ["patients.created", "patients.updated", "patients.deleted"],
        **options,
    )
    webhook, secret = create_webhook(environment, fields)
    webhook.plain_secret = secret
    return webhook


def make_delivery(webhook, **fields) -> Delivery:
    """A delivery of `webhook` carrying no event, in whatever state `fields` say: for the ledger's own tests."""
    return Delivery.objects.create(
        webhook=webhook, environment=webhook.environment, message_id=new_message_id(), **fields
    )


def carried_out(send):
    """A send asked for by hand (test, self-test, verification, re-send), carried out here by the function a
    worker runs, and returned finished: for tests about what is sent rather than who sends it."""
    done = carry_out(send.pk)
    assert done is not None, f"{send} was not carried out"
    return done
