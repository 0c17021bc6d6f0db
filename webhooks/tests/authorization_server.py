"""A real OAuth 2.0 authorization server on 127.0.0.1 for tests: Authlib's, not ours.

It issues client credentials tokens to registered clients, which authenticate by
`client_secret_basic`, `client_secret_post` or `private_key_jwt` (RFC 7523:
the assertion's signature checked against the client's JWKS URL, its `exp`,
`aud` = the token URL, and a `jti` used twice refused). It counts the tokens it
issued, and `protects(receiver)` makes a test receiver accept only its live tokens.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer as AuthlibServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, OAuth2Request
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from webhooks.tests.receiver import Answer

# Authlib refuses plain HTTP outside tests; these servers live on 127.0.0.1 for one test.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


@dataclass
class Client(ClientMixin):
    client_id: str
    secret: str = ""
    auth_method: str = "client_secret_basic"
    jwks_url: str = ""
    scope: str = ""

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return ""

    def get_allowed_scope(self, scope):
        return scope

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(self.secret, client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        if self.auth_method == "private_key_jwt":
            return method == JWTBearerClientAssertion.CLIENT_AUTH_METHOD
        return method == self.auth_method

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [
        "client_secret_basic",
        "client_secret_post",
        JWTBearerClientAssertion.CLIENT_AUTH_METHOD,
    ]


class _Request(OAuth2Request):
    def __init__(self, uri: str, headers: dict, form: dict):
        super().__init__("POST", uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self):
        return self._form

    @property
    def args(self):
        return {}


@dataclass
class Issued:
    client_id: str
    expires_at: float
    scope: str = ""


@dataclass
class _State:
    clients: dict[str, Client] = field(default_factory=dict)
    tokens: dict[str, Issued] = field(default_factory=dict)
    used_jtis: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    expires_in: int = 3600
    issued: int = 0
    every_token: list[str] = field(default_factory=list)  # for tests that search for leaks
    assertions: list[str] = field(default_factory=list)  # every private_key_jwt assertion received
    requested: list[dict] = field(default_factory=list)  # what each token request asked for (scope, resource)
    delay: float = 0.0
    # An answer given instead of a token (status, body): a token endpoint that fails or talks nonsense.
    broken: tuple[int, bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(AuthlibServer):
    def __init__(self, state: _State, token_url: str):
        super().__init__()
        self.state, self.token_url = state, token_url
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._generate)
        server = self

        class Assertion(JWTBearerClientAssertion):
            def get_audiences(self):
                return [server.token_url]

            def validate_jti(self, claims, jti):
                with state.lock:
                    if jti in state.used_jtis:
                        return False
                    state.used_jtis.add(jti)
                    return True

            def process_assertion_claims(self, assertion, resolve_key):
                # As a SMART Backend Services server: RS384 and ES384 (joserfc allows only its recommended ones).
                try:
                    token = jose_jwt.decode(assertion, resolve_key, algorithms=["RS384", "ES384"])
                except JoseError as error:
                    raise InvalidClientError(description=error.description) from error
                self.verify_claims(token.claims)
                return token.claims

            def resolve_client_public_key(self, client):
                with urllib.request.urlopen(client.jwks_url, timeout=5) as answer:  # noqa: S310 - our test JWKS
                    return KeySet.import_key_set(json.load(answer))

        self.register_client_auth_method(Assertion.CLIENT_AUTH_METHOD, Assertion())

    def _generate(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        return {"token_type": "Bearer", "access_token": secrets.token_urlsafe(24), "expires_in": self.state.expires_in}

    def query_client(self, client_id):
        return self.state.clients.get(client_id)

    def save_token(self, token, request):
        with self.state.lock:
            self.state.issued += 1
            self.state.every_token.append(token["access_token"])
            self.state.tokens[token["access_token"]] = Issued(
                request.client.client_id, time.monotonic() + token["expires_in"], token.get("scope", "")
            )

    def send_signal(self, name, *args, **kwargs):
        pass

    def create_oauth2_request(self, request):
        return request

    def handle_response(self, status, body, headers):
        return status, body, headers


class AuthorizationServer:
    """Start with `with AuthorizationServer() as server:`; `server.token_url` is its token endpoint."""

    def __init__(self) -> None:
        self.state = _State()
        state = self.state
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - the stdlib's name
                form = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()))
                state.requested.append({name: form[name] for name in ("scope", "resource") if name in form})
                if "client_assertion" in form:
                    state.assertions.append(form["client_assertion"])
                if state.delay:
                    time.sleep(state.delay)
                if state.broken is not None:
                    status, body = state.broken
                    self._answer(status, body, {"Content-Type": "application/json"})
                    return
                request = _Request(outer.token_url, dict(self.headers), form)
                status, body, headers = outer.server.create_token_response(request)
                if status != 200:
                    state.refused.append(str(body))
                self._answer(status, json.dumps(body).encode(), dict(headers))

            def _answer(self, status, body, headers):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.token_url = f"http://127.0.0.1:{self.http.server_port}/oauth2/token"
        self.server = _Server(state, self.token_url)
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def register(self, client_id: str, **fields) -> Client:
        client = Client(client_id, **fields)
        self.state.clients[client_id] = client
        return client

    @property
    def issued(self) -> int:
        """How many tokens it gave (one per fetch that succeeded)."""
        with self.state.lock:
            return self.state.issued

    def revoke_all(self) -> None:
        with self.state.lock:
            self.state.tokens.clear()

    def is_live(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        with self.state.lock:
            issued = self.state.tokens.get(token)
        return scheme.lower() == "bearer" and issued is not None and issued.expires_at > time.monotonic()

    def protects(self, body, headers) -> Answer:
        """A receiver's judge: 200 with a live token of this server, 401 without."""
        if self.is_live(headers.get("Authorization")):
            return Answer(200)
        return Answer(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b"invalid token")

    def __enter__(self) -> AuthorizationServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.shutdown()
        self.http.server_close()
