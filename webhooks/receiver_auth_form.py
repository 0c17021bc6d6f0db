"""The form of a webhook's receiver authentication page (webhooks/views/receiver_auth.py).

The client secret is typed once and never shown again (an empty field keeps it); the certificate, its key
and a CA bundle are uploaded as PEM files. The services in `receiver_auth.py` check what holds.
"""

from __future__ import annotations

from django import forms

from .models import ReceiverAuth
from .receiver_auth import KEY_ALGORITHMS, ReceiverAuthFields

PEM_MAX_BYTES = 256 * 1024


class ReceiverAuthForm(forms.Form):
    method = forms.ChoiceField(label="Authentication", choices=ReceiverAuth.Method.choices)
    token_url = forms.CharField(label="Token URL", required=False, max_length=2000)
    client_id = forms.CharField(label="Client id", required=False, max_length=255)
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Never shown again. Leave empty to keep the one stored.",
    )
    secret_method = forms.ChoiceField(
        label="Send the secret", choices=ReceiverAuth.SecretMethod.choices, required=False
    )
    key_algorithm = forms.ChoiceField(
        label="Key algorithm (private_key_jwt)", choices=[(name, name) for name in KEY_ALGORITHMS], required=False
    )
    rotate_key = forms.BooleanField(
        label="Make a new key pair (the old public key stays published a day)", required=False
    )
    scope = forms.CharField(label="Scope", required=False, max_length=500)
    resource = forms.CharField(
        label="Resource (RFC 8707)", required=False, max_length=2000, help_text="Only if the receiver asks for one."
    )
    client_cert = forms.FileField(label="TLS client certificate (PEM)", required=False)
    client_key = forms.FileField(label="Its private key (PEM, unencrypted)", required=False)
    new_csr_common_name = forms.CharField(
        label="Or generate a key here and a CSR for it, with the common name",
        required=False,
        max_length=64,
        help_text="Have the CSR signed by whoever issues the receiver's client certificates, then upload the "
        "certificate alone.",
    )
    remove_client_cert = forms.BooleanField(label="Stop presenting a client certificate", required=False)
    ca_bundle = forms.FileField(label="The receiver's CA certificates (PEM)", required=False)
    remove_ca_bundle = forms.BooleanField(label="Trust the system roots only", required=False)

    def fields_value(self) -> ReceiverAuthFields:
        data = self.cleaned_data
        return ReceiverAuthFields(
            method=data["method"],
            token_url=data["token_url"],
            client_id=data["client_id"],
            client_secret=data["client_secret"],
            secret_method=data["secret_method"] or ReceiverAuth.SecretMethod.BASIC,
            scope=data["scope"],
            key_algorithm=data["key_algorithm"] or "RS384",
            resource=data["resource"],
        )

    def pem(self, name: str) -> str:
        """An uploaded PEM file's text ('' when none was uploaded)."""
        upload = self.cleaned_data.get(name)
        if not upload:
            return ""
        if upload.size > PEM_MAX_BYTES:
            raise forms.ValidationError("at most 256 KB")
        try:
            return upload.read().decode("ascii")
        except UnicodeDecodeError:
            raise forms.ValidationError("not a PEM file") from None


def initial_of(stored: ReceiverAuth) -> dict:
    """What the form shows: the settings, never the secret."""
    return {
        "method": stored.method,
        "token_url": stored.token_url,
        "client_id": stored.client_id,
        "secret_method": stored.secret_method,
        "scope": stored.scope,
        "resource": stored.resource,
        "key_algorithm": stored.key_algorithm or "RS384",
    }
