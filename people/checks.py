"""Deploy check: a portal that guards health data asks at least its Admins for a second factor."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def mfa_required(app_configs=None, **kwargs) -> list[Warning]:
    if settings.MFA_REQUIRED != "off":
        return []
    return [
        Warning(
            "MFA_REQUIRED is off: anyone with a password signs in, Admins included.",
            hint="Set MFA_REQUIRED=admins (or everyone): they enrol an authenticator app at their next sign-in.",
            id="integration_tools.W101",
        )
    ]
