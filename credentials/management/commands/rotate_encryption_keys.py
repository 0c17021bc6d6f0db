from django.db import transaction

from credentials.fields import EncryptedField, encrypted_fields
from environments.audit import record_audit
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = (
        "Re-encrypt every stored secret (client secrets, webhook signing secrets, webhook extra headers, and "
        "receivers' OAuth client secrets, private keys and access tokens, and TLS client keys) "
        "under the first of "
        "FIELD_ENCRYPTION_KEYS. Put the new key first, run this, then drop the old key. Safe to run twice."
    )

    def handle(self, *args, **options):
        # Every field of the encrypted type, wherever it is declared: a new secret is rotated without a change here.
        # The summary lists them in the order of their words, so it reads the same whatever the apps' order.
        reports = sorted((_reported_as(field), field) for field in encrypted_fields())
        counts = {}
        with transaction.atomic():
            for (_words, name), field in reports:
                count = 0
                for row in field.model.objects.select_for_update().only("pk", field.name):
                    field.reencrypt(row)
                    row.save(update_fields=[field.name])
                    count += 1
                counts[name] = count
            record_audit(self.actor, "encryption.keys_rotated", details=counts)
        total = sum(counts.values())
        summary = ", ".join(f"{counts[name]} {words}" for (words, name), _field in reports)
        self.report(
            {"reencrypted": total, **counts},
            f"Re-encrypted {total} secret{'s' if total != 1 else ''} ({summary}).",
        )


def _reported_as(field: EncryptedField) -> tuple[str, str]:
    """(words after the count, key in --json) of a field; a field that declares none is named by its model."""
    name, words = field.reported_as
    label = f"{field.model._meta.label_lower}.{field.name}"
    return (words or label, name or label)
