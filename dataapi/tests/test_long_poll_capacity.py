"""Long-polls of the events feed never take the web tier: gunicorn as docker-compose runs it, one process."""

import shlex
import threading
import time

import pytest
import requests
import yaml

from conftest import BASE_DIR, gunicorn_serving
from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.records import create_record
from environments.tests.factories import make_environment


def production_web_arguments() -> list[str]:
    """docker-compose's web command's gunicorn arguments, cut to one process (the tightest case), unbound."""
    command = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())["services"]["web"]["command"]
    if command[:2] == ["sh", "-c"]:  # a shell line that prepares the metrics folder, then execs gunicorn
        command = shlex.split(command[2].split("exec ", 1)[1])
    assert command[:2] == ["gunicorn", "integration_tools.wsgi"], command
    arguments = command[2:]
    bind = arguments.index("--bind")
    del arguments[bind : bind + 2]
    arguments[arguments.index("--workers") + 1] = "1"
    return arguments


@pytest.fixture
def portal(transactional_db, tmp_path):
    with gunicorn_serving(production_web_arguments(), tmp_path / "gunicorn.log") as url:
        yield url


def token_of_a_new_client(environment) -> str:
    client = make_client(environment)
    credential, _ = make_credential(client)
    return issue_token(client, credential, None, ip="127.0.0.1").access_token


def test_six_clients_long_polling_leave_the_process_free_for_others_and_all_wake_on_a_commit(portal):
    environment = make_environment("clinic")
    tokens = [token_of_a_new_client(environment) for _ in range(6)]
    answered: dict[int, float] = {}

    def long_poll(n: int):
        started = time.monotonic()
        response = requests.get(
            f"{portal}/api/v1/clinic/events?wait=20",
            headers={"Authorization": f"Bearer {tokens[n]}", "Host": "localhost"},
            timeout=30,
        )
        assert response.status_code == 200
        answered[n] = time.monotonic() - started

    polls = [threading.Thread(target=long_poll, args=(n,)) for n in range(6)]
    for poll in polls:
        poll.start()
    time.sleep(1.0)
    started = time.monotonic()
    listing = requests.get(
        f"{portal}/api/v1/clinic/patients/",
        headers={"Authorization": f"Bearer {tokens[0]}", "Host": "localhost"},
        timeout=10,
    )
    served_in = time.monotonic() - started
    at_once = sorted(n for n, took in answered.items() if took < 1.0)
    create_record(environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
    for poll in polls:
        poll.join(timeout=30)

    assert listing.status_code == 200 and served_in < 1.0, served_in
    assert len(at_once) == 2, f"beyond the 4 long-poll slots a poll is answered at once: {answered}"
    woken = [took for n, took in answered.items() if n not in at_once]
    assert len(woken) == 4 and max(woken) < 5, answered


def test_a_second_long_poll_of_the_same_client_is_answered_at_once(portal):
    environment = make_environment("clinic")
    token = token_of_a_new_client(environment)
    headers = {"Authorization": f"Bearer {token}", "Host": "localhost"}
    first = threading.Thread(
        target=requests.get, args=(f"{portal}/api/v1/clinic/events?wait=3",), kwargs={"headers": headers}
    )
    first.start()
    time.sleep(0.5)
    started = time.monotonic()
    second = requests.get(f"{portal}/api/v1/clinic/events?wait=3", headers=headers, timeout=10)
    took = time.monotonic() - started
    first.join()

    assert second.status_code == 200 and second.json()["events"] == [] and took < 1.0
