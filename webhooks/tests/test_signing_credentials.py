"""A credential that signs a webhook cannot be invalidated: the credentials app asks the check that
settings.CREDENTIAL_IN_USE_CHECKS names (the webhooks app's), not one registered at start-up."""

import pytest

from credentials.services import CredentialInUse, credential_in_use_by, invalidate_credential
from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import make_environment
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db


def test_a_credential_signing_a_webhook_is_not_invalidated_and_the_refusal_names_the_webhook():
    environment = make_environment("clinic")
    app = make_client(environment)
    old, _ = make_credential(app, name="Old")
    spare, _ = make_credential(app, name="Spare")
    with Receiver() as receiver:
        webhook = make_webhook(
            environment,
            receiver.url,
            name="Billing feed",
            security_method="credentials",
            signing_credential_ids=[str(old.pk)],
        )

    assert credential_in_use_by(old) == [("Billing feed", f"/e/clinic/webhooks/{webhook.pk}/")]
    with pytest.raises(CredentialInUse, match="“Old” is used to sign webhook “Billing feed”; remove it"):
        invalidate_credential(old)
    old.refresh_from_db()
    assert old.invalidated_at is None

    assert credential_in_use_by(spare) == []
    invalidate_credential(spare)
    spare.refresh_from_db()
    assert spare.invalidated_at is not None
