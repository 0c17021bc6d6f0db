from django.db import transaction

from credentials.models import Credential
from credentials.secrets import reencrypt
from environments.audit import record_audit
from environments.management.base import PortalCommand


class Command(PortalCommand):
    help = (
        "Re-encrypt every stored secret under the first of FIELD_ENCRYPTION_KEYS. Put the new key first, run this, "
        "then drop the old key. Safe to run twice."
    )

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for credential in Credential.objects.select_for_update().only("id", "secret_encrypted"):
                credential.secret_encrypted = reencrypt(credential.secret_encrypted)
                credential.save(update_fields=["secret_encrypted"])
                count += 1
            record_audit("encryption.keys_rotated", details={"credentials": count})
        self.report({"reencrypted": count}, f"Re-encrypted {count} credential secret{'s' if count != 1 else ''}.")
