"""The token endpoint (RFC 6749 §4.4) and the revocation endpoint (RFC 7009)."""

import base64
import binascii
from urllib.parse import unquote_plus

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from portal.client_address import client_ip

from ..oauth import OAuthError, authenticate_client, issue_token, revoke_presented_token
from ..scopes import available_scopes

FORM = "application/x-www-form-urlencoded"


# Error reports (if ever enabled) must not carry secrets or tokens.
@csrf_exempt
@sensitive_post_parameters("client_secret")
@sensitive_variables("secret", "issued")
def token(request: HttpRequest) -> JsonResponse:
    try:
        params, basic_used = _parse(request, required=("grant_type",))
        if params["grant_type"] != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials is supported")
        client_id, secret = _client_authentication(request, params, basic_used)
        client, credential = authenticate_client(client_id, secret, ip=client_ip(request))
        if not set(client.scopes) & set(available_scopes(client.environment)):
            raise OAuthError(
                "unauthorized_client", "the client has no scope left in its environment's published schema"
            )
        issued = issue_token(client, credential, params.get("scope"), ip=client_ip(request))
    except OAuthError as error:
        return _error_response(error, basic_used=_basic_attempted(request))
    return _no_store(
        JsonResponse(
            {
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "scope": " ".join(issued.scopes),
            }
        )
    )


@csrf_exempt
@sensitive_post_parameters("client_secret", "token")
@sensitive_variables("secret", "params")
def revoke(request: HttpRequest) -> JsonResponse:
    try:
        params, basic_used = _parse(request, required=("token",))
        client_id, secret = _client_authentication(request, params, basic_used)
        client, _ = authenticate_client(client_id, secret, ip=client_ip(request))
        revoke_presented_token(client, params["token"], ip=client_ip(request))
    except OAuthError as error:
        return _error_response(error, basic_used=_basic_attempted(request))
    # RFC 7009 §2.2: 200 whether or not the token was valid, so nothing leaks.
    return _no_store(JsonResponse({}))


def _parse(request: HttpRequest, *, required: tuple[str, ...]) -> tuple[dict[str, str], bool]:
    if request.method != "POST":
        raise OAuthError("invalid_request", "use POST", status=405)
    if request.body and request.content_type != FORM:
        raise OAuthError("invalid_request", f"the request body must be {FORM}")
    params = {}
    for key in request.POST:
        values = request.POST.getlist(key)
        if len(values) > 1:
            raise OAuthError("invalid_request", f"the parameter {key} is repeated")
        params[key] = values[0]
    for key in required:
        if not params.get(key):
            raise OAuthError("invalid_request", f"the parameter {key} is missing")
    return params, _basic_attempted(request)


def _basic_attempted(request: HttpRequest) -> bool:
    return request.headers.get("Authorization", "").lower().startswith("basic ")


def _client_authentication(request: HttpRequest, params: dict[str, str], basic_used: bool) -> tuple[str, str]:
    """The client_id and secret, from HTTP Basic (§2.3.1, form-url-encoded) or from the body; never both."""
    if basic_used:
        if "client_secret" in params:
            raise OAuthError("invalid_request", "authenticate with HTTP Basic or with form fields, not both")
        try:
            decoded = base64.b64decode(request.headers["Authorization"][6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "the Basic credentials are not valid base64", status=401) from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "the Basic credentials must be client_id:client_secret", status=401)
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if "\x00" in client_id or "\x00" in secret:
            raise OAuthError("invalid_request", "the Basic credentials contain a NUL character")
        if params.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id in the body differs from the Basic credentials")
        return client_id, secret
    if "client_id" in params and "client_secret" in params:
        return params["client_id"], params["client_secret"]
    raise OAuthError("invalid_client", "client authentication is required", status=401)


def _error_response(error: OAuthError, *, basic_used: bool) -> JsonResponse:
    response = JsonResponse({"error": error.error, "error_description": error.description}, status=error.status)
    if error.status == 401 and basic_used:
        response["WWW-Authenticate"] = 'Basic realm="Integration Tools"'
    if error.status == 405:
        response["Allow"] = "POST"
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return _no_store(response)


def _no_store(response: JsonResponse) -> JsonResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
