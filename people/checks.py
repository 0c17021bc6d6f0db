"""Checks: a portal that guards health data asks at least its Admins for a second factor (deploy), and its
passkey settings name a relying party browsers accept."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

from .passkeys import relying_party


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


@register(Tags.security)
def passkey_relying_party(app_configs=None, **kwargs) -> list[Warning]:
    problem = relying_party().problem
    if not problem:
        return []
    return [
        Warning(
            f"Passkeys are not offered: {problem}",
            hint="WEBAUTHN_RP_ID is a domain name; WEBAUTHN_ORIGIN is https:// on it or a subdomain (or localhost).",
            id="integration_tools.W102",
        )
    ]
