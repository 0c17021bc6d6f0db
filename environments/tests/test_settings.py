"""Production settings: refuse to start without secrets, and pass Django's deploy checks."""

import subprocess
import sys

from cryptography.fernet import Fernet

from conftest import BASE_DIR

PRODUCTION = {
    "PATH": "/usr/bin:/bin",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "portal.example.org",
    "DATABASE_URL": "sqlite:////tmp/integration-tools-settings-check.sqlite3",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
}


def manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**PRODUCTION, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Integration Tools cannot start: SECRET_KEY must be set when DEBUG is off (see .env.example)."
    ]


def test_production_refuses_to_start_without_encryption_keys():
    result = manage("check", SECRET_KEY="s" * 60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Integration Tools cannot start: FIELD_ENCRYPTION_KEYS must be set when DEBUG is off (see .env.example)."
    ]


def test_a_malformed_encryption_key_is_named():
    result = manage("check", SECRET_KEY="s" * 60, FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},short")
    assert result.returncode == 1
    assert "FIELD_ENCRYPTION_KEYS key 2 is not a Fernet key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_production_settings_pass_the_deploy_checks():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY="k3y-" + "x9Y!" * 15,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


DEVELOPMENT_SECRET_KEY = "dev-only-secret-key-not-for-production-use-0123456789abcdefghij"  # noqa: S105
DEVELOPMENT_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UtISE="


def test_production_refuses_the_development_secret_key():
    result = manage("check", SECRET_KEY=DEVELOPMENT_SECRET_KEY, FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Integration Tools cannot start: SECRET_KEY is the public development key; set a secret one (see .env.example)."
    ]


def test_production_refuses_the_development_encryption_key_even_behind_a_new_one():
    result = manage(
        "check", SECRET_KEY="s" * 60, FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{DEVELOPMENT_FIELD_KEY}"
    )
    assert result.returncode == 1
    assert "FIELD_ENCRYPTION_KEYS holds the public development key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_deploy_check_reports_the_development_keys():
    result = manage("check", "--deploy", DEBUG="1")
    assert result.returncode == 1
    assert "integration_tools.E001" in result.stderr and "integration_tools.E002" in result.stderr


SPACED = [f"{DEVELOPMENT_FIELD_KEY} ", f"{DEVELOPMENT_FIELD_KEY}\n", f" {DEVELOPMENT_FIELD_KEY}\r\n"]


def test_production_refuses_the_development_encryption_key_with_a_trailing_space_or_newline():
    for spaced in SPACED:
        keys = f"{Fernet.generate_key().decode()},{spaced}"
        result = manage("check", SECRET_KEY="s" * 60, FIELD_ENCRYPTION_KEYS=keys)
        assert result.returncode == 1, repr(spaced)
        assert result.stderr.strip().splitlines() == [
            "Integration Tools cannot start: FIELD_ENCRYPTION_KEYS holds the public development key; put a new key "
            "first, run rotate_encryption_keys with DEBUG on, then remove it (see .env.example)."
        ]


def test_production_refuses_the_development_secret_key_with_a_trailing_newline():
    result = manage(
        "check", SECRET_KEY=f"{DEVELOPMENT_SECRET_KEY}\n", FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode()
    )
    assert result.returncode == 1
    assert "SECRET_KEY is the public development key" in result.stderr


def test_the_deploy_check_reports_the_development_keys_however_they_are_spaced():
    for spaced in SPACED:
        result = manage(
            "check", "--deploy", DEBUG="1", SECRET_KEY=f"{DEVELOPMENT_SECRET_KEY} ", FIELD_ENCRYPTION_KEYS=spaced
        )
        assert result.returncode == 1, repr(spaced)
        assert "integration_tools.E001" in result.stderr and "integration_tools.E002" in result.stderr


def test_a_real_key_with_a_trailing_newline_is_used_without_it():
    key = Fernet.generate_key().decode()
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.FIELD_ENCRYPTION_KEYS)",
        SECRET_KEY="s" * 60,
        FIELD_ENCRYPTION_KEYS=f"{key}\n, ",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == repr([key])
