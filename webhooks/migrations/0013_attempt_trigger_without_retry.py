"""The "retry" trigger goes: no code ever recorded it (a retry is a scheduled attempt). Choices only, no SQL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0012_signing_secret_field"),
    ]

    operations = [
        migrations.AlterField(
            model_name="attempt",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("scheduled", "Scheduled"),
                    ("resend", "Manual re-send"),
                    ("test", "Test"),
                    ("probe", "Probe (is the failing receiver back?)"),
                ],
                max_length=16,
            ),
        ),
    ]
