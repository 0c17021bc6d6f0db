"""A signing key is an encrypted field (decrypted on read), stored as before: same column, same Fernet token."""

from django.db import migrations

import credentials.fields


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0011_bulk_resend_outcomes"),
    ]

    operations = [
        # State only: the column keeps its name and holds the same token, so nothing is rewritten.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(model_name="signingsecret", old_name="secret_encrypted", new_name="secret"),
                migrations.AlterField(
                    model_name="signingsecret",
                    name="secret",
                    field=credentials.fields.EncryptedTextField(db_column="secret_encrypted"),
                ),
            ],
        ),
    ]
