"""Deploy checks (`manage.py check --deploy`): what Django's own checks do not know about this portal."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def development_keys(app_configs=None, **kwargs) -> list[Error]:
    """The keys written in settings.py are public: no deployment may use them."""
    errors = []
    if settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        errors.append(
            Error(
                "SECRET_KEY is the public development key.",
                hint="Set SECRET_KEY to a long random value (see .env.example).",
                id="integration_tools.E001",
            )
        )
    if settings.DEVELOPMENT_FIELD_ENCRYPTION_KEY in settings.FIELD_ENCRYPTION_KEYS:
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEYS holds the public development key.",
                hint="Put a new Fernet key first, run rotate_encryption_keys, then remove the development key.",
                id="integration_tools.E002",
            )
        )
    return errors
