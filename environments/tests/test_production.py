"""The production processes of docker-compose.yml, run directly: gunicorn with WhiteNoise on production settings."""

import re
import subprocess
import sys

import pytest
import requests
import yaml
from cryptography.fernet import Fernet

from conftest import BASE_DIR, gunicorn_serving, subprocess_env

COMPOSE = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
PORTAL_SERVICES = ("migrate", "web", "worker", "beat")


def run_gunicorn(tmp_path, *, collect_static: bool):
    """gunicorn on production settings; yields its URL, stops it afterwards."""
    env = dict(
        DEBUG="0",
        SECRET_KEY="test-only-" + "q7Z!" * 15,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="portal.example.org,127.0.0.1",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    if collect_static:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=BASE_DIR,
            env=subprocess_env(**env),
            check=True,
        )
    # Stopped even when it never answers: a gunicorn left behind holds the test database open.
    with gunicorn_serving(
        ["--workers", "1"], tmp_path / "gunicorn.log", ready_headers={"X-Forwarded-Proto": "https"}, **env
    ) as url:
        yield url


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    yield from run_gunicorn(tmp_path, collect_static=True)


@pytest.fixture
def gunicorn_without_collectstatic(transactional_db, tmp_path):
    yield from run_gunicorn(tmp_path, collect_static=False)


HTTPS = {"X-Forwarded-Proto": "https", "Host": "portal.example.org"}


def test_gunicorn_serves_the_portal_securely_with_its_static_files(gunicorn):
    health = requests.get(f"{gunicorn}/healthz", headers=HTTPS, timeout=5)
    assert health.json() == {"status": "ok", "database": "ok"}

    plain = requests.get(f"{gunicorn}/login/", headers={"Host": "portal.example.org"}, allow_redirects=False, timeout=5)
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://portal.example.org/login/"

    login = requests.get(f"{gunicorn}/login/", headers=HTTPS, timeout=5)
    assert login.status_code == 200
    assert login.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "default-src 'self'" in login.headers["Content-Security-Policy"]
    csrf_cookie = login.headers["Set-Cookie"]
    assert "csrftoken=" in csrf_cookie and "Secure" in csrf_cookie

    stylesheet = re.search(r'href="(/static/css/portal\.[0-9a-f]+\.css)"', login.text).group(1)
    css = requests.get(f"{gunicorn}{stylesheet}", headers=HTTPS, timeout=5)
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "max-age=315360000" in css.headers["Cache-Control"]


def test_an_unknown_host_is_refused_without_a_stack_trace(gunicorn):
    response = requests.get(f"{gunicorn}/login/", headers={**HTTPS, "Host": "evil.example"}, timeout=5)
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_compose_runs_every_process_the_product_needs():
    services = COMPOSE["services"]
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    observing = {name for name, service in services.items() if "observability" in service.get("profiles", [])}
    assert observing == {"prometheus", "grafana"}
    pooled = {name for name, service in services.items() if "pgbouncer" in service.get("profiles", [])}
    assert pooled == {"pgbouncer"}
    web = services["web"]["command"]  # a shell line that empties the metrics folder, then execs gunicorn
    assert web[:2] == ["sh", "-c"] and web[2].split("exec ", 1)[1].startswith("gunicorn ")
    assert services["worker"]["command"][:4] == ["celery", "-A", "integration_tools", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "integration_tools", "beat"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_can_put_pgbouncer_in_transaction_mode_between_the_portal_and_postgres():
    services = COMPOSE["services"]
    pgbouncer = services["pgbouncer"]["environment"]
    assert pgbouncer["POOL_MODE"] == "transaction" and pgbouncer["DB_HOST"] == "postgres"
    assert pgbouncer["DB_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert "@${DATABASE_HOST:-postgres}:${DATABASE_PORT:-5432}/portal" in env["DATABASE_URL"], name
        assert env["DATABASE_POOLER"] == "${DATABASE_POOLER:-}", name
    # Migrations run straight on PostgreSQL, never through the pooler.
    migrate = services["migrate"]["environment"]
    assert migrate["DATABASE_URL"].endswith("@postgres:5432/portal") and migrate["DATABASE_POOLER"] == ""
    # Workers can be scaled: nothing pins one container name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_compose_commits_no_secrets():
    for name in PORTAL_SERVICES:
        env = COMPOSE["services"][name]["environment"]
        assert env["DEBUG"] == "0"
        for key in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS"):
            assert env[key].startswith("${") and ":?" in env[key], f"{name}.{key} must come from the environment"
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert COMPOSE["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_pages_and_static_files_work_when_collectstatic_never_ran(gunicorn_without_collectstatic):
    login = requests.get(f"{gunicorn_without_collectstatic}/login/", headers=HTTPS, timeout=5)
    assert login.status_code == 200
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', login.text):
        assert requests.get(f"{gunicorn_without_collectstatic}{asset}", headers=HTTPS, timeout=5).status_code == 200
    assert "/static/favicon.svg" in login.text
