"""Settings for Integration Tools, read from the environment.

Every variable is documented in `.env.example`. Defaults are for development:
with nothing set, the portal runs on a SQLite file and the embedded Celery
broker under `var/`, so it needs no server. Production (`DEBUG=off`) refuses to
start without a real `SECRET_KEY` and `FIELD_ENCRYPTION_KEYS`.
"""

from pathlib import Path

import environ
from cryptography.fernet import Fernet

from environments.development_keys import (
    DEVELOPMENT_FIELD_ENCRYPTION_KEY,
    DEVELOPMENT_SECRET_KEY,
    is_development_field_key,
    is_development_secret_key,
    normalised_keys,
)
from portal.client_address import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Where the embedded defaults keep their files (SQLite database, broker folder, beat schedule).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)


def _refuse_to_start(message: str) -> None:
    # SystemExit with a string prints exactly one line and exits 1: ops see the
    # reason, not a traceback through Django's settings loader.
    raise SystemExit(f"Integration Tools cannot start: {message}")


# --- Secrets --------------------------------------------------------------

# The development keys are public (environments/development_keys.py): production
# refuses them here, however they are spaced, and `check --deploy` reports them
# (environments/checks.py).
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        _refuse_to_start("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
elif is_development_secret_key(SECRET_KEY) and not DEBUG:
    _refuse_to_start("SECRET_KEY is the public development key; set a secret one (see .env.example).")

# Fernet keys, comma-separated: the first encrypts, all decrypt, so a new key
# can be put in front and old data re-encrypted at leisure. Whitespace around a
# key (a trailing newline from a secrets file) is not part of it.
FIELD_ENCRYPTION_KEYS = normalised_keys(env.list("FIELD_ENCRYPTION_KEYS", default=[]))
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        _refuse_to_start("FIELD_ENCRYPTION_KEYS must be set when DEBUG is off (see .env.example).")
    FIELD_ENCRYPTION_KEYS = [DEVELOPMENT_FIELD_ENCRYPTION_KEY]
elif any(is_development_field_key(key) for key in FIELD_ENCRYPTION_KEYS) and not DEBUG:
    _refuse_to_start(
        "FIELD_ENCRYPTION_KEYS holds the public development key; put a new key first, run "
        "rotate_encryption_keys with DEBUG on, then remove it (see .env.example)."
    )
for _position, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        _refuse_to_start(
            f"FIELD_ENCRYPTION_KEYS key {_position} is not a Fernet key (32 url-safe base64-encoded bytes; "
            'make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# The reverse proxies in front of the portal, as networks (CIDR), comma-separated. X-Forwarded-For is
# believed only from them, right-most untrusted hop first (environments/client_address.py);
# empty (the default) trusts no proxy and every address is REMOTE_ADDR.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    parse_networks(TRUSTED_PROXIES)
except ValueError as error:
    _refuse_to_start(f"TRUSTED_PROXIES: {error}.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Applications -----------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "portal",
    "environments",
    "credentials",
    "webhooks",
    # These compose the apps above: nothing above imports them.
    "dataapi",
    "overview",
    "notifications",
    # Reads every app's tables for /metrics: nothing imports it.
    "observability",
    # People and sign-in (second factors on django-otp): reads environments and credentials, imported by none.
    "people",
]

# Called with each new event inside the transaction that writes it (environments/events.py):
# the webhooks' fan-out writes each subscribed webhook's delivery atomically with the change.
# (observability.tracing.fan_out is that fan-out in a trace span: a no-op span unless tracing is on.)
EVENT_LISTENERS = ["observability.tracing.fan_out"]
# Asked before a credential is invalidated (credentials/services.py): each names what still uses it.
CREDENTIAL_IN_USE_CHECKS = ["webhooks.configure.webhooks_signing_with"]
# Asked before event data past the payload retention is erased (environments/outbox.py): each gives the
# events still to be sent, which keep their data.
EVENT_DATA_HOLDS = ["webhooks.erasure.events_still_to_send"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # First after security: everything after it (throttles, audit, access records) reads request.client_ip.
    "portal.client_address.ClientAddressMiddleware",
    # Outside everything that answers a Data API request, so it counts the status that is finally sent.
    "observability.requests.DataApiRequestsMiddleware",
    # Every log line of a request carries its request id and environment (LOG_FORMAT=json writes them).
    "observability.request_ids.RequestLogContextMiddleware",
    # A trace span per request when OTEL_EXPORTER_OTLP_ENDPOINT is set (observability/tracing.py).
    "observability.tracing.TracingMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "environments.preferences.PreferenceMiddleware",
    "integration_tools.request_guard.RequestGuardMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Which second factor verified the session (django-otp), then the gate (after messages: it says why it
    # signs out): ended, idle and too-old sessions are refused, and a person must pass (or enrol) their second
    # factor before any other page.
    "django_otp.middleware.OTPMiddleware",
    "people.gate.SessionGateMiddleware",
    "environments.views.errors.PortalNotFoundMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "dataapi.api_errors.ApiJsonErrorsMiddleware",
]

ROOT_URLCONF = "integration_tools.urls"
WSGI_APPLICATION = "integration_tools.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "environments.context_processors.portal",
                "webhooks.context_processors.attention",
                "notifications.context_processors.unread",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Reuse connections across requests: opening one costs several ms, more than a Data API read.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker threads and the web process share the file. WAL lets readers
    # go on while one writes; immediate transactions take the write lock when
    # they begin, so two writers queue for it (busy timeout) instead of one
    # failing with "database is locked" when a read turns into a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
# Behind PgBouncer in transaction mode each transaction may get a different server connection, so nothing may
# outlive one: no server-side cursors (a `.iterator()` would open one and read it in later transactions).
# Locks are transaction-scoped advisory locks and settings are `SET LOCAL` throughout the code already; Django's
# psycopg cursors bind on the client, so no prepared statement is left on a server connection either.
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "pgbouncer"):
    _refuse_to_start(f"DATABASE_POOLER must be empty or 'pgbouncer', not {DATABASE_POOLER!r}")
if DATABASE_POOLER == "pgbouncer":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery -----------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="embedded://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's own filesystem transport can hand a worker a half-written message and stop it for good
    # (integration_tools/embedded_broker.py says how); the embedded one keeps its folder layout without the race.
    CELERY_BROKER_URL = "embedded://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("embedded://"):
    # No server: messages are files under var/broker, written and claimed by atomic renames.
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        # Broadcast (remote control) messages; kombu's default is a folder in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default: a delivery would wait up to that long.
        "polling_interval": env.float("CELERY_BROKER_POLLING_INTERVAL", default=0.02),
    }
elif CELERY_BROKER_URL.startswith("sentinel://"):
    # Redis behind Sentinel: the URL lists the sentinels (`sentinel://h1:26379;sentinel://h2:26379/0`) and
    # they name the master of this group; after a failover the worker and the web ask them again.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"master_name": env.str("CELERY_BROKER_MASTER_NAME", default="") or "mymaster"}
# A worker's threads take tasks; waiting on receivers is left to its I/O threads (WEBHOOK_IO_THREADS),
# so a receiver that hangs holds none of these. `make run`, docker-compose, the tests and the
# benchmark all take these from here.
CELERY_WORKER_POOL = env.str("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=16)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup closes the database connection after every task unless this is set; a new
# PostgreSQL connection costs more than a whole delivery. Connections are still dropped when broken
# or older than DB_CONN_MAX_AGE (see integration_tools/celery.py), and recycled every 2 x this many tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Beat may run on every worker host: only the one holding the database's lease sends (integration_tools/beat.py),
# and another takes over within 1⅓ leases of the holder's last renewal.
CELERY_BEAT_SCHEDULER = "integration_tools.beat:LeasedScheduler"
BEAT_LEASE_SECONDS = env.float("BEAT_LEASE_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE_FILENAME = env.str("CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celerybeat-schedule"))

# The event stream (environments/stream.py): how often beat places events nobody has read yet, and how long
# a long-poll of the events feed may wait (at most EVENTS_LONG_POLLS_PER_PROCESS wait at once in one web
# process, and one per client: the others are answered at once, so long-polls never take every web thread).
EVENT_SEQUENCE_SECONDS = env.float("EVENT_SEQUENCE_SECONDS", default=2.0)
EVENTS_WAIT_MAX_SECONDS = 30
EVENTS_LONG_POLLS_PER_PROCESS = env.int("EVENTS_LONG_POLLS_PER_PROCESS", default=4)
# How many days events stay in the stream by default (an environment may set its own): longer than deliveries.
# An event a delivery still references stays until that delivery is pruned (environments/outbox.py).
EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=120)

# How often the worker reports that it is alive (shown on the Overview page).
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=30.0)
# After this long without a report from any worker, every page says nothing is being sent.
WORKER_SILENT_AFTER_SECONDS = env.float("WORKER_SILENT_AFTER_SECONDS", default=max(60.0, WORKER_HEARTBEAT_SECONDS * 2))

# --- Auth -------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Who must sign in with a second factor (people/factors.py): "admins", "everyone" or "off". A person it covers
# enrols an authenticator app at their next sign-in. Production defaults to admins; `check --deploy` warns on off.
MFA_REQUIRED = env.str("MFA_REQUIRED", default="off" if DEBUG else "admins")
if MFA_REQUIRED not in ("admins", "everyone", "off"):
    _refuse_to_start(f"MFA_REQUIRED must be admins, everyone or off, not {MFA_REQUIRED!r}")
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Integration Tools")
# Passkeys (people/passkeys.py): the relying party ID (a domain name, never an address) and the origin pages
# are served from. Unset, both follow PORTAL_URL; a loopback address there stands for localhost (development).
WEBAUTHN_RP_ID = env.str("WEBAUTHN_RP_ID", default="")
WEBAUTHN_ORIGIN = env.str("WEBAUTHN_ORIGIN", default="")
# A session unused this long is signed out; none lasts longer than SESSION_MAX_HOURS (people/sessions.py).
SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=30)
SESSION_MAX_HOURS = env.int("SESSION_MAX_HOURS", default=12)
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
# The sign-in throttle (people/sign_in.py), the token endpoint's design: failures allowed within the window per
# (account, address), per address, and per account over all addresses (which then refuses only addresses that
# have failed for it). An address that has not failed is never refused.
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS = env.int("LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS", default=5)
LOGIN_MAX_FAILURES_PER_IP = env.int("LOGIN_MAX_FAILURES_PER_IP", default=30)
LOGIN_MAX_FAILURES_PER_ACCOUNT = env.int("LOGIN_MAX_FAILURES_PER_ACCOUNT", default=20)
# Days the rows of single failures are kept: the token endpoint's (credentials.AuthFailure), sign-in attempts
# (each person's last 20 stay whatever their age: their security page lists them) and failure tallies. Pruned
# hourly (portal/throttling.py). The throttles read minutes of them and the Overview a day: kept at least that.
# The audit trail itself has no retention: it is kept (HIPAA asks for six years).
AUTH_FAILURE_RETENTION_DAYS = env.int("AUTH_FAILURE_RETENTION_DAYS", default=30)
if AUTH_FAILURE_RETENTION_DAYS < 1:
    _refuse_to_start(f"AUTH_FAILURE_RETENTION_DAYS must be 1 or more, not {AUTH_FAILURE_RETENTION_DAYS}")
# Viewers see delivery payloads and response bodies (each view audited, people/patient_data.py); off shows
# them metadata only (ids, times, status codes, event types).
VIEWERS_SEE_PAYLOADS = env.bool("VIEWERS_SEE_PAYLOADS", default=True)
# How long an invitation's link works.
INVITATION_VALID_HOURS = env.int("INVITATION_VALID_HOURS", default=72)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "integration_tools.static_storage.ManifestOrPlainStorage"
        )
    },
}
# Without a collected manifest (tests, runserver with DEBUG off, a deployment
# that skipped collectstatic) pages link the unhashed names and WhiteNoise
# serves them from the app directories instead of every page failing.
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

# --- Security ---------------------------------------------------------------

# Everything is served from our own origin: no CDN, no inline script or style.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # A scraper inside the deployment's own network (docker-compose's Prometheus) reads /metrics over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Portal -----------------------------------------------------------------

AUDIT_PAGE_SIZE = env.int("AUDIT_PAGE_SIZE", default=50)
# Records bigger than this are refused: the Data API and portal both enforce it.
RECORD_MAX_BYTES = env.int("RECORD_MAX_BYTES", default=64 * 1024)

# --- Notifications and e-mail ---------------------------------------------

# E-mail goes through Django's framework. Default: printed to the console (nothing leaves the machine).
# Production: EMAIL_URL=smtp+tls://user:password@mail.example.org:587 (django-environ's e-mail URL).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Integration Tools <integration-tools@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The portal's address as people reach it: links in e-mails start with it.
# Unset (development), it follows PORT, which `make run` serves on: e-mails sent by the worker lead there.
PORTAL_URL = env.str("PORTAL_URL", default=f"http://127.0.0.1:{env.str('PORT', default='8000')}")
# A failing webhook's people are told once it has failed this long.
NOTIFY_FAILING_AFTER_MINUTES = env.float("NOTIFY_FAILING_AFTER_MINUTES", default=60)
# How often beat looks for something to tell, and how old an occasion may be and still be told.
NOTIFICATIONS_SCAN_SECONDS = env.float("NOTIFICATIONS_SCAN_SECONDS", default=60)
NOTIFICATIONS_LOOKBACK_DAYS = env.int("NOTIFICATIONS_LOOKBACK_DAYS", default=7)
NOTIFICATIONS_PAGE_SIZE = 50

# --- Logging ----------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"refusal_without_traceback": {"()": "integration_tools.log_records.RefusalWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # Django's own logging gives "django" a console handler of its own when DEBUG is on; its records
        # also reach ours, so each would be written twice. One handler, ours, writes them.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.request": {"filters": ["refusal_without_traceback"], "propagate": True},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
# LOG_FORMAT=json: one JSON object per line, with the correlation fields of the request, task, command or
# delivery it is about (portal/log_context.py); plain text otherwise.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    _refuse_to_start(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING["filters"]["correlation"] = {"()": "portal.log_context.CorrelationFilter"}
LOGGING["handlers"]["console"]["filters"] = ["correlation"]
if LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
    }
    LOGGING["handlers"]["console"]["formatter"] = "json"
# Celery's worker replaces the root logger's handlers unless told not to: with JSON its lines go through ours.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

# --- Observability -----------------------------------------------------------

# /metrics (observability/): readable with `Authorization: Bearer <METRICS_TOKEN>`, or from these networks
# (CIDR, e.g. 10.0.0.0/8 for a scraper on a private network). With neither, /metrics answers 403.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])

# --- OAuth and the Data API -------------------------------------------------

ACCESS_TOKEN_LIFETIME_SECONDS = env.int("ACCESS_TOKEN_LIFETIME_SECONDS", default=3600)
# The failed-authentication throttle (credentials/throttle.py): failures allowed within the window
# per (client_id, address), per address, and per client_id over all addresses (which then refuses
# only addresses that have failed for it). An address that has not failed is never refused.
OAUTH_FAILURE_WINDOW_SECONDS = env.int("OAUTH_FAILURE_WINDOW_SECONDS", default=300)
OAUTH_MAX_FAILURES_PER_CLIENT = env.int("OAUTH_MAX_FAILURES_PER_CLIENT", default=10)
OAUTH_MAX_FAILURES_PER_IP = env.int("OAUTH_MAX_FAILURES_PER_IP", default=30)
OAUTH_MAX_FAILURES_PER_CLIENT_TOTAL = env.int("OAUTH_MAX_FAILURES_PER_CLIENT_TOTAL", default=100)
# An address the client obtained a token from within this many hours is never refused a right secret, however
# many wrong ones come from it (a real client behind the same NAT or proxy as someone guessing).
OAUTH_SUCCESS_ALLOWANCE_HOURS = env.int("OAUTH_SUCCESS_ALLOWANCE_HOURS", default=24)
# Request bodies larger than this get 413 from the Data API.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=256 * 1024)
# The most records one page of the Data API lists (`limit`); the default is 50.
API_PAGE_SIZE_MAX = 200

# --- Webhooks ---------------------------------------------------------------

WEBHOOKS_PER_ENVIRONMENT_MAX = env.int("WEBHOOKS_PER_ENVIRONMENT_MAX", default=20)
# Environment kinds (test, sandbox, live) whose new webhooks, and webhooks whose URL changes, must prove
# their receiver (a signed challenge it answers) before any delivery is sent. An Admin may waive it.
WEBHOOK_VERIFICATION_REQUIRED_KINDS = env.list("WEBHOOK_VERIFICATION_REQUIRED_KINDS", default=["live"])
# Plain http:// URLs are for development only.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=DEBUG)
# Networks (CIDR) webhooks may reach even though they are not public, e.g. 127.0.0.1/32 for a local receiver.
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
# Ports webhooks may send to: the web's own and every unprivileged one, so a
# subscribed URL cannot speak to a public host's SMTP, SSH or other system service.
WEBHOOK_ALLOWED_PORTS = env.list("WEBHOOK_ALLOWED_PORTS", default=["80", "443", "1024-65535"])
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=15)
WEBHOOK_TIMEOUT_SECONDS_MAX = 60
WEBHOOK_MAX_EVENTS_PER_REQUEST_MAX = 100
WEBHOOK_RESPONSE_BODY_MAX_BYTES = env.int("WEBHOOK_RESPONSE_BODY_MAX_BYTES", default=4096)
# Isolation: a new webhook's default cap on requests in flight at once, across all workers (each webhook
# sets its own, 1 to 256: its "maximum requests at a time"), so a receiver that hangs holds that many
# sending slots and no more; and an environment's, whatever its webhooks' caps add up to.
WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK", default=4)
WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT", default=64)
# Requests wait for their receivers on I/O threads, at most this many per worker process; a worker thread
# waits this long for an answer before leaving the request to them (webhooks/delivery/inflight.py).
WEBHOOK_IO_THREADS = env.int("WEBHOOK_IO_THREADS", default=256)
WEBHOOK_SEND_PATIENCE_SECONDS = env.float("WEBHOOK_SEND_PATIENCE_SECONDS", default=0.1)
# Under backlog a worker leases up to this many of a webhook's due deliveries in one statement and
# sends them one after another over a kept-alive connection.
WEBHOOK_CLAIM_BATCH = env.int("WEBHOOK_CLAIM_BATCH", default=50)
# A failing webhook's oldest waiting delivery is re-sent early, every tenth of how long it has
# failed, within these bounds: a receiver back from an outage is noticed within seconds.
WEBHOOK_PROBE_MIN_SECONDS = env.float("WEBHOOK_PROBE_MIN_SECONDS", default=5)
WEBHOOK_PROBE_MAX_SECONDS = env.float("WEBHOOK_PROBE_MAX_SECONDS", default=1800)
# Seconds before each attempt, the Standard Webhooks schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
# 14 h, 20 h, 24 h. Each delay after the first gets +/- WEBHOOK_RETRY_JITTER of itself at random.
WEBHOOK_RETRY_SCHEDULE = [
    float(value)
    for value in env.list("WEBHOOK_RETRY_SCHEDULE", default=[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400])
]
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.2)
# The longest Retry-After (on 429 and 503) that is honoured; longer values are capped to it.
WEBHOOK_RETRY_AFTER_MAX_SECONDS = env.int("WEBHOOK_RETRY_AFTER_MAX_SECONDS", default=86400)
WEBHOOK_DISABLE_AFTER_FAILING_DAYS = env.float("WEBHOOK_DISABLE_AFTER_FAILING_DAYS", default=5)
# How long a rotated signing secret keeps signing, by default (settable per rotation, 0 to 168 hours).
WEBHOOK_SECRET_GRACE_HOURS = env.int("WEBHOOK_SECRET_GRACE_HOURS", default=24)
# The sweeper runs every WEBHOOK_SWEEP_SECONDS and re-enqueues deliveries that are due and whose
# last enqueue is older than WEBHOOK_REQUEUE_AFTER_SECONDS (a lost task, a flushed Redis, a crash).
WEBHOOK_SWEEP_SECONDS = env.float("WEBHOOK_SWEEP_SECONDS", default=5)
WEBHOOK_REQUEUE_AFTER_SECONDS = env.float("WEBHOOK_REQUEUE_AFTER_SECONDS", default=60)
# How often the beat looks for quiet webhooks that asked for heartbeats (webhooks/heartbeats.py): a
# heartbeat goes out at most this long after its webhook's minutes have passed.
WEBHOOK_HEARTBEAT_SCAN_SECONDS = env.float("WEBHOOK_HEARTBEAT_SCAN_SECONDS", default=30)
# A worker sending a delivery holds it for the webhook's timeout plus one second plus this margin; a worker
# killed mid-send gives it up when that lease ends.
WEBHOOK_LEASE_MARGIN_SECONDS = env.float("WEBHOOK_LEASE_MARGIN_SECONDS", default=30)
DELIVERY_RETENTION_DAYS = env.int("DELIVERY_RETENTION_DAYS", default=90)
# Months of attempt partitions made ahead of the current one (PostgreSQL; webhooks/partitions.py).
ATTEMPT_PARTITIONS_AHEAD = env.int("ATTEMPT_PARTITIONS_AHEAD", default=3)
# Deliveries and their event links live in ranges of id (PostgreSQL; webhooks/delivery_ranges.py): each new
# range holds DELIVERY_RANGE_DAYS at the current pace (retention drops a range at a time: at 1,000
# deliveries/s, 1 day keeps each under 100 M rows), at least DELIVERY_RANGE_MIN_IDS ids, and this many
# ranges' worth of ids are kept ready past the last one given.
DELIVERY_RANGE_DAYS = env.int("DELIVERY_RANGE_DAYS", default=31)
DELIVERY_RANGES_AHEAD = env.int("DELIVERY_RANGES_AHEAD", default=2)
DELIVERY_RANGE_MIN_IDS = env.int("DELIVERY_RANGE_MIN_IDS", default=1_000_000)
DELIVERY_PAGE_SIZE = env.int("DELIVERY_PAGE_SIZE", default=50)
