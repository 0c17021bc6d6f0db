"""The receiver authentication flags of `create_webhook` and `change_webhook` (issue 23).

Secrets and keys are read from files, never from the command line (which `ps` and shell histories show):
`--oauth-client-secret-file`, `--client-cert`/`--client-key`, `--ca-bundle`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from django.core.management.base import CommandError

from portal.actor import Actor
from webhooks.models import ReceiverAuth, Webhook
from webhooks.receiver_auth import (
    ReceiverAuthFields,
    ReceiverAuthInvalid,
    new_client_csr,
    receiver_auth_of,
    remove_client_certificate,
    rotate_client_key,
    set_ca_bundle,
    set_client_certificate,
    set_receiver_auth,
)

# The flags that set the OAuth 2.0 settings, and the ReceiverAuthFields attribute each sets.
_OAUTH_FLAGS = {
    "receiver_auth": "method",
    "token_url": "token_url",
    "oauth_client_id": "client_id",
    "oauth_client_auth": "secret_method",
    "oauth_scope": "scope",
    "oauth_resource": "resource",
    "oauth_key_algorithm": "key_algorithm",
}


def add_arguments(parser: argparse.ArgumentParser, *, changing: bool) -> None:
    """Add the flags; when `changing`, a flag not given leaves what the webhook has."""
    unset = argparse.SUPPRESS if changing else None
    # No abbreviations: `--oauth-client-secret s3cr3t` must not be taken for `--oauth-client-secret-file`.
    parser.allow_abbrev = False
    group = parser.add_argument_group("receiver authentication (for receivers that demand more than a signature)")
    group.add_argument("--receiver-auth", choices=ReceiverAuth.Method.values, default=unset)
    group.add_argument("--token-url", default=unset, help="The receiver's OAuth 2.0 token endpoint.")
    group.add_argument("--oauth-client-id", default=unset, help="The client id the receiver registered for us.")
    group.add_argument(
        "--oauth-client-secret-file", default=unset, metavar="PATH", help="A file holding the client secret."
    )
    group.add_argument("--oauth-client-auth", choices=ReceiverAuth.SecretMethod.values, default=unset)
    group.add_argument("--oauth-scope", default=unset, help='Scopes asked for, e.g. "system/Patient.write".')
    group.add_argument("--oauth-resource", default=unset, help="The resource (RFC 8707) the token is for, if asked.")
    group.add_argument("--oauth-key-algorithm", choices=["RS384", "ES384"], default=unset, help="oauth2-jwt key.")
    group.add_argument("--client-cert", default=unset, metavar="PATH", help="TLS client certificate (PEM).")
    group.add_argument("--client-key", default=unset, metavar="PATH", help="Its private key (PEM, unencrypted).")
    group.add_argument("--ca-bundle", default=unset, metavar="PATH", help='Receiver CAs (PEM); "" removes them.')
    group.add_argument(
        "--new-client-csr", default=unset, metavar="COMMON_NAME",
        help="Make a key here and print a CSR for it; upload the issued certificate with --client-cert alone.",
    )  # fmt: skip
    if changing:
        group.add_argument("--rotate-oauth-key", action="store_true", help="A new oauth2-jwt key pair.")
        group.add_argument("--remove-client-cert", action="store_true", help="Stop presenting a client certificate.")


def _read(flag: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        # Not the path: whoever typed a secret where a path goes would see it in the message, and in logs.
        raise CommandError(f"{flag}: cannot read that file ({error.__class__.__name__})") from None


def apply(webhook: Webhook, options: dict, actor: Actor) -> None:
    """Apply the flags given to the webhook. Raises CommandError saying what does not hold."""
    try:
        _apply(webhook, {name: value for name, value in options.items() if value is not None}, actor)
    except ReceiverAuthInvalid as error:
        raise CommandError(str(error)) from None


def _apply(webhook: Webhook, given: dict, actor: Actor) -> None:
    if any(name in given for name in (*_OAUTH_FLAGS, "oauth_client_secret_file")):
        stored = receiver_auth_of(webhook)
        fields = ReceiverAuthFields(
            method=stored.method, token_url=stored.token_url, client_id=stored.client_id,
            secret_method=stored.secret_method, scope=stored.scope, key_algorithm=stored.key_algorithm or "RS384",
            resource=stored.resource,
        )  # fmt: skip
        for flag, attribute in _OAUTH_FLAGS.items():
            if flag in given:
                setattr(fields, attribute, given[flag])
        if "oauth_client_secret_file" in given:
            fields.client_secret = _read("--oauth-client-secret-file", given["oauth_client_secret_file"]).strip()
        if fields.method == ReceiverAuth.Method.NONE and set(given) & (set(_OAUTH_FLAGS) - {"receiver_auth"}):
            raise CommandError("OAuth 2.0 settings need --receiver-auth oauth2-secret or oauth2-jwt")
        set_receiver_auth(webhook, fields, actor)
    if given.get("rotate_oauth_key"):
        rotate_client_key(webhook, actor)
    if "new_client_csr" in given:
        new_client_csr(webhook, given["new_client_csr"], actor)
    if "client_key" in given and "client_cert" not in given:
        raise CommandError("--client-key goes with --client-cert")
    if "client_cert" in given:
        key = _read("--client-key", given["client_key"]) if "client_key" in given else ""
        set_client_certificate(webhook, _read("--client-cert", given["client_cert"]), key, actor)
    if given.get("remove_client_cert"):
        remove_client_certificate(webhook, actor)
    if "ca_bundle" in given:
        set_ca_bundle(webhook, _read("--ca-bundle", given["ca_bundle"]) if given["ca_bundle"] else "", actor)


def describe_text(described: dict) -> str:
    """What the command prints of the receiver authentication (public halves only)."""
    lines = []
    if described.get("method", "none") != "none":
        lines.append(f"receiver authentication: {described['method']} at {described.get('token_url')}")
    if "kid" in described:
        lines.append(
            f"client key (kid {described['kid']}, {described['key_algorithm']}): published in the environment's "
            "JWKS; register that JWKS URL (or this public key) with the receiver's authorization server"
        )
    if "client_certificate" in described:
        certificate = described["client_certificate"]
        lines.append(
            f"client certificate: {certificate['subject']}, issued by {certificate['issuer']}, "
            f"expires {certificate['not_after']}"
        )
    if "client_csr" in described:
        lines.append(
            "certificate signing request (have it signed, then --client-cert PATH):\n" + described["client_csr"]
        )
    return "\n".join(lines)
