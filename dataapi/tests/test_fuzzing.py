"""A property-based fuzzer (schemathesis, every check) against a live server and an environment's document.

Bounded: a fixed seed and a fixed number of examples per operation, so the run
takes about a minute and is the same run each time; `schemathesis.toml` beside
this file states the one exception it is configured with (opaque cursors).
"""

import subprocess
import sys
from pathlib import Path

from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import make_environment

EVERY_FIELD_TYPE = {
    "data_types": {
        "patients": {
            "fields": {
                "first_name": {"type": "string", "required": True, "max_length": 100},
                "notes": {"type": "text"},
                "visits": {"type": "integer", "minimum": 0, "maximum": 1000},
                "weight_kg": {"type": "number", "minimum": 0},
                "consented": {"type": "boolean"},
                "status": {"type": "choice", "choices": ["active", "discharged"]},
                "birth_date": {"type": "date"},
                "admitted_at": {"type": "datetime"},
                "email": {"type": "email"},
            }
        },
        "workers": {"fields": {"name": {"type": "string", "required": True}, "grade": {"type": "integer"}}},
    }
}
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_fuzzer_finds_no_server_error_and_no_response_outside_the_document(
    transactional_db, live_server, tmp_path, settings
):
    # The feed's long-polls are answered at once here, as when every slot is taken: the fuzzer checks what
    # comes back, and up to 30 s of waiting per request would spend its whole budget (long-polls are tested
    # in test_feed.py and test_long_poll_capacity.py).
    settings.EVENTS_LONG_POLLS_PER_PROCESS = 0
    environment = make_environment("fuzzed", schema=EVERY_FIELD_TYPE)
    api_client = make_client(environment, scopes=["patients:read", "patients:write", "workers:read", "workers:write"])
    credential, _ = make_credential(api_client)
    token = issue_token(api_client, credential, None, ip="127.0.0.1").access_token

    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(CONFIG),
            "run",
            f"{live_server.url}/api/v1/fuzzed/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "20261123",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,  # its caches and reports stay out of the checkout
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "No issues found" in result.stdout, summary
