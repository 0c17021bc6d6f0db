from django.apps import apps
from django.db import transaction

from credentials.fields import EncryptedJSONField
from credentials.secrets import reencrypt
from environments.audit import record_audit
from portal.commands import PortalCommand

# Every model field that holds a Fernet-encrypted secret, as (app_label.Model, field, name in the report).
ENCRYPTED_FIELDS = [
    ("credentials.Credential", "secret_encrypted", "credentials"),
    ("webhooks.SigningSecret", "secret_encrypted", "webhook_keys"),
    ("webhooks.Webhook", "extra_headers", "webhook_headers"),
]


class Command(PortalCommand):
    help = (
        "Re-encrypt every stored secret (client secrets, webhook signing secrets and webhook extra headers) "
        "under the first of "
        "FIELD_ENCRYPTION_KEYS. Put the new key first, run this, then drop the old key. Safe to run twice."
    )

    def handle(self, *args, **options):
        counts = {}
        with transaction.atomic():
            for label, field, name in ENCRYPTED_FIELDS:
                model = apps.get_model(label)
                count = 0
                # An EncryptedJSONField is decrypted on load and encrypted under the first key on save.
                sealed = isinstance(model._meta.get_field(field), EncryptedJSONField)
                for row in model.objects.select_for_update().only("pk", field):
                    if not sealed:
                        setattr(row, field, reencrypt(getattr(row, field)))
                    row.save(update_fields=[field])
                    count += 1
                counts[name] = count
            record_audit(self.actor, "encryption.keys_rotated", details=counts)
        total = sum(counts.values())
        self.report(
            {"reencrypted": total, **counts},
            f"Re-encrypted {total} secret{'s' if total != 1 else ''} "
            f"({counts['credentials']} of credentials, {counts['webhook_keys']} webhook signing keys, "
            f"{counts['webhook_headers']} webhooks' extra headers).",
        )
