"""The settings a deployment past one machine sets: the broker's Sentinel group and the database pooler."""

import json
import subprocess
import sys

from conftest import BASE_DIR

SHOW = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.CELERY_BROKER_TRANSPORT_OPTIONS, s.DATABASES['default'].get('DISABLE_SERVER_SIDE_CURSORS')]))"
)


def settings_with(**env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "integration_tools.settings"}
    base["DATABASE_URL"] = "postgres://portal@127.0.0.1:6432/portal"
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=BASE_DIR, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_a_sentinel_broker_url_asks_the_sentinels_for_the_named_master():
    url = "sentinel://10.0.0.5:26379;sentinel://10.0.0.6:26379/0"
    result = settings_with(CELERY_BROKER_URL=url, CELERY_BROKER_MASTER_NAME="portal-broker")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0] == {"master_name": "portal-broker"}


def test_pgbouncer_as_the_pooler_turns_server_side_cursors_off():
    result = settings_with(CELERY_BROKER_URL="redis://127.0.0.1:6379/0", DATABASE_POOLER="pgbouncer")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[1] is True


def test_an_unknown_pooler_is_refused_in_one_line():
    result = settings_with(CELERY_BROKER_URL="redis://127.0.0.1:6379/0", DATABASE_POOLER="pgpool")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Integration Tools cannot start: DATABASE_POOLER must be empty or 'pgbouncer', not 'pgpool'"
    ]
