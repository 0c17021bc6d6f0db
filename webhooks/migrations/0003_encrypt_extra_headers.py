"""Extra header values may be a receiver's credentials: move them from plain JSON to an encrypted column."""

from django.db import migrations

import credentials.fields


def seal(apps, schema_editor):
    Webhook = apps.get_model("webhooks", "Webhook")
    for webhook in Webhook.objects.only("pk", "extra_headers"):
        webhook.extra_headers_sealed = webhook.extra_headers or {}
        webhook.save(update_fields=["extra_headers_sealed"])


def unseal(apps, schema_editor):
    Webhook = apps.get_model("webhooks", "Webhook")
    for webhook in Webhook.objects.only("pk", "extra_headers_sealed"):
        webhook.extra_headers = webhook.extra_headers_sealed or {}
        webhook.save(update_fields=["extra_headers"])


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_engine_v2")]

    operations = [
        migrations.AddField(
            model_name="webhook",
            name="extra_headers_sealed",
            field=credentials.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(seal, unseal),
        migrations.RemoveField(model_name="webhook", name="extra_headers"),
        migrations.RenameField(model_name="webhook", old_name="extra_headers_sealed", new_name="extra_headers"),
    ]
