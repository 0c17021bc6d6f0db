"""Deploy checks (`manage.py check --deploy`): what Django's own checks do not know about this portal."""

from django.conf import settings
from django.core.checks import Error, Tags, register

from .development_keys import is_development_field_key, is_development_secret_key


@register(Tags.security, deploy=True)
def development_keys(app_configs=None, **kwargs) -> list[Error]:
    """The keys written in development_keys.py are public: no deployment may use them, however spaced."""
    errors = []
    if is_development_secret_key(settings.SECRET_KEY):
        errors.append(
            Error(
                "SECRET_KEY is the public development key.",
                hint="Set SECRET_KEY to a long random value (see .env.example).",
                id="integration_tools.E001",
            )
        )
    if any(is_development_field_key(key) for key in settings.FIELD_ENCRYPTION_KEYS):
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEYS holds the public development key.",
                hint="Put a new Fernet key first, run rotate_encryption_keys, then remove the development key.",
                id="integration_tools.E002",
            )
        )
    return errors
