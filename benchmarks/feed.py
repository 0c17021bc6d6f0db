"""The events feed (GET /api/v1/<environment>/events) against gunicorn: reading a long stream by cursor, and how
soon a long-poll wakes after a commit.

Runs inside bench.py's process (Django set up on the run's database); the portal is this checkout under gunicorn
(2 gthread workers of 8 threads as docker-compose runs it, production settings, gunicorn's default
worker timeout as in production) on that same database.
"""

from __future__ import annotations

import random
import statistics
import threading
import time

import requests
from django.db import connection, transaction

from benchmarks.api_throughput import serve, token

# Events written per transaction while filling the stream.
INSERT_CHUNK = 10_000
# gunicorn worker processes, as api_throughput, each with production's threads (docker-compose: gthread, 8).
WORKERS = 2
THREADS = 8


def measure(base_dir, env: dict, *, events: int, trials: int, idle_wait: float) -> dict:
    """Fill a stream with `events` events, read them all by cursor over HTTP, then time `trials` long-poll
    wake-ups; with `idle_wait`, also one long-poll that nothing wakes (does it come back, and when)."""
    from environments.stream import assign_positions

    stream_environment, stream_client = _environment("bench-feed")
    inserting = time.perf_counter()
    _insert_events(stream_environment, events)
    inserted = time.perf_counter()
    assign_positions(stream_environment.pk)
    placed = time.perf_counter()
    stale = _first_page_ms(stream_environment, page_max())
    # The statistics a steady stream has (autovacuum analyzes as events accumulate): just after placing all these
    # events at once they say almost no event has a position, and the planner reads every event after the
    # cursor, then sorts (the figure above).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE environments_event")
    wake_environment, wake_client = _environment("bench-feed-wake")
    limit = page_max()
    others = [_environment("bench-feed-wake")[1] for _ in range(WORKERS)]
    with serve(base_dir, env, workers=WORKERS, threads=THREADS) as url:
        _warm_up(url, stream_environment.slug, token(url, *stream_client))
        reading = read_all(url, stream_environment.slug, token(url, *stream_client), limit, events)
        wake = wake_trials(url, wake_environment, token(url, *wake_client), trials)
        blocked = beside_long_polls(url, wake_environment.slug, [token(url, *client) for client in others], idle_wait)
        idle = idle_poll(url, wake_environment.slug, token(url, *wake_client), idle_wait) if idle_wait else None
    reading["in_process"] = in_process_pages(stream_environment, limit)
    read_holds = reading["events"] == events and reading["events_per_s"] >= 20_000
    wake_holds = wake["lost"] == 0 and wake["ms"]["p99"] is not None and wake["ms"]["p99"] <= 100
    return {
        "events": events,
        "insert_s": round(inserted - inserting, 2),
        "assign_positions_s": round(placed - inserted, 2),
        "first_page_query_ms_before_analyze": stale,
        "first_page_query_ms_after_analyze": _first_page_ms(stream_environment, page_max()),
        "read": reading,
        "wake": wake,
        "idle_poll": idle,
        "beside_long_polls": blocked,
        "bar": "read >= 20,000 events/s; long-poll wake p99 <= 100 ms after the commit",
        "read_holds": read_holds,
        "wake_holds": wake_holds,
        "holds": read_holds and wake_holds,
    }


def page_max() -> int:
    """The most events one page of the feed may hold."""
    from dataapi.feed import MAX_EVENTS_PER_PAGE

    return MAX_EVENTS_PER_PAGE


def _environment(slug: str):
    """An environment (made if missing) and a reader client of its patients: (environment, (client_id, secret))."""
    from credentials.services import create_client, create_credential
    from environments.models import Environment
    from environments.tests.factories import make_environment

    environment = Environment.objects.filter(slug=slug).first() or make_environment(slug)
    client = create_client(environment, f"Feed reader {time.monotonic_ns()}", ["patients:read"])
    _, secret = create_credential(client, "bench run")
    return environment, (client.client_id, secret)


def _insert_events(environment, count: int) -> None:
    """`count` patients.created events shaped as create_record writes them, in a few big transactions (no
    records behind them: the feed reads events only)."""
    import datetime
    import uuid

    from environments.models import Event

    moment = datetime.datetime.now(datetime.UTC)
    stamp = moment.isoformat().replace("+00:00", "Z")
    for start in range(0, count, INSERT_CHUNK):
        rows = []
        for n in range(start, min(start + INSERT_CHUNK, count)):
            record_id = uuid.uuid4()
            data = {
                "id": str(record_id),
                "data_type": "patients",
                "external_id": None,
                "created_at": stamp,
                "updated_at": stamp,
                "fields": {"first_name": f"F{n}", "last_name": "Bench", "status": "active"},
            }
            event = Event(environment=environment, type="patients.created", record_id=record_id, data=data)
            event.occurred_at = moment
            rows.append(event)
        with transaction.atomic():
            Event.objects.bulk_create(rows, batch_size=2000)


def _get(session: requests.Session, url: str, slug: str, params: dict, timeout: float = 60) -> requests.Response:
    response = session.get(f"{url}/api/v1/{slug}/events", params=params, timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(f"events feed answered {response.status_code}: {response.text[:500]}")
    return response


def _warm_up(url: str, slug: str, access_token: str) -> None:
    """A few small reads first, so that no gunicorn worker's first request (imports, connection) is timed."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token}"
    for _ in range(2 * WORKERS):
        _get(session, url, slug, {"limit": 1})


def read_all(url: str, slug: str, access_token: str, limit: int, expected: int) -> dict:
    """Read the whole stream from the start by cursor, one page at a time as a client does."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token}"
    params: dict = {"limit": limit}
    pages: list[float] = []
    parsing: list[float] = []
    sizes: list[int] = []
    size_bytes: list[int] = []
    positions: list[int] = []
    started = time.perf_counter()
    while len(positions) < expected:
        before = time.perf_counter()
        response = _get(session, url, slug, params)
        arrived = time.perf_counter()
        body = response.json()
        pages.append((time.perf_counter() - before) * 1000)
        parsing.append((time.perf_counter() - arrived) * 1000)
        size_bytes.append(len(response.content))
        if not body["events"]:
            break
        sizes.append(len(body["events"]))
        positions += [event["position"] for event in body["events"]]
        params["after"] = body["next_cursor"]
    elapsed = time.perf_counter() - started
    in_order = all(a < b for a, b in zip(positions, positions[1:], strict=False))
    return {
        "events": len(positions),
        "distinct": len(set(positions)),
        "in_order": in_order,
        "limit": limit,
        "pages": len(pages),
        "largest_page": max(sizes, default=0),
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(positions) / elapsed, 1) if elapsed else None,
        "page_ms": _percentiles(pages),
        # Of a page's time: the client's parsing of the body, and what one request of a single event takes (the
        # fixed cost of a request: HTTP, authentication, middleware, the stream's small queries).
        "client_parse_ms": _percentiles(parsing),
        "page_bytes": round(statistics.median(size_bytes)) if size_bytes else None,
        "one_event_request_ms": _one_event_requests(session, url, slug),
    }


def _one_event_requests(session: requests.Session, url: str, slug: str, count: int = 20) -> dict:
    times = []
    for n in range(count):
        before = time.perf_counter()
        _get(session, url, slug, {"limit": 1, "after": n})
        times.append((time.perf_counter() - before) * 1000)
    return _percentiles(times)


def in_process_pages(environment, limit: int, pages: int = 50) -> dict:
    """Where a page's time goes on the server, measured here without HTTP: the stream's read (its query, and
    building each event's JSON text), over the first `pages` pages."""
    from environments import stream

    top = stream.head(environment.pk)
    query, build, whole = [], [], []
    after = 0
    for _ in range(pages):
        started = time.perf_counter()
        rows = stream._rows(environment.pk, after, top, limit, ["patients"])
        queried = time.perf_counter()
        [stream._event_json(environment.slug, *row) for row in rows]
        built = time.perf_counter()
        stream.read(environment, after, limit, ["patients"])
        read = time.perf_counter()
        query.append((queried - started) * 1000)
        build.append((built - queried) * 1000)
        whole.append((read - built) * 1000)
        if not rows:
            break
        after = rows[-1][0]
    return {"query_ms": _percentiles(query), "json_ms": _percentiles(build), "read_ms": _percentiles(whole)}


def _first_page_ms(environment, limit: int) -> float:
    """The stream's query for the first page (in process), median of 5, in ms."""
    from environments import stream

    top = stream.head(environment.pk)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        stream._rows(environment.pk, 0, top, limit, ["patients"])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def wake_trials(url: str, environment, access_token: str, trials: int) -> dict:
    """A reader long-polls (wait=30) after the head; a writer commits one record; the time from the writer's
    commit returning to the reader's answer arriving. Each reader starts anew after the last answer."""
    from environments.records import create_record

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token}"
    cursor = _head_cursor(session, url, environment.slug)
    latencies: list[float] = []
    lost = 0
    for n in range(trials):
        answer: dict = {}

        def wait(after=cursor, answer=answer) -> None:
            response = _get(session, url, environment.slug, {"after": after, "wait": 30}, timeout=45)
            answer["at"] = time.perf_counter()
            answer["body"] = response.json()

        reader = threading.Thread(target=wait)
        reader.start()
        # The reader is asleep in its poll by now; a random offset, so commits fall anywhere in a poll's period.
        time.sleep(0.3 + random.random() * 0.1)
        record = create_record(environment, "patients", {"first_name": f"W{n}", "last_name": "Bench"})
        committed = time.perf_counter()
        reader.join(timeout=45)
        ids = [event["data"]["id"] for event in answer.get("body", {}).get("events", [])]
        if str(record.id) not in ids:
            lost += 1
            cursor = _head_cursor(session, url, environment.slug)
            continue
        latencies.append((answer["at"] - committed) * 1000)
        cursor = answer["body"]["next_cursor"]
    return {"trials": trials, "lost": lost, "ms": _percentiles(latencies)}


def _head_cursor(session: requests.Session, url: str, slug: str) -> str | None:
    params: dict = {"limit": page_max()}
    while True:
        body = _get(session, url, slug, params).json()
        params["after"] = body["next_cursor"]
        if not body["events"]:
            return body["next_cursor"]


def beside_long_polls(url: str, slug: str, access_tokens: list[str], wait: float) -> dict:
    """One long-poll per gunicorn worker (each of its own client, as the feed allows), waiting with nothing
    written; meanwhile another request (a feed read without wait): how long it takes to be answered."""
    wait = wait or 2.0
    polls = []
    for access_token in access_tokens:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {access_token}"
        cursor = _head_cursor(session, url, slug)
        params = {"after": cursor, "wait": wait}
        polls.append(threading.Thread(target=_get, args=(session, url, slug, params), kwargs={"timeout": wait + 30}))
    for poll in polls:
        poll.start()
    time.sleep(0.5)  # the polls are waiting now
    other = requests.Session()
    other.headers["Authorization"] = f"Bearer {access_tokens[0]}"
    started = time.perf_counter()
    _get(other, url, slug, {"limit": 1}, timeout=wait + 30)
    answered = time.perf_counter() - started
    for poll in polls:
        poll.join(timeout=wait + 30)
    return {"long_polls": len(polls), "wait_s": wait, "other_request_answered_after_s": round(answered, 2)}


def idle_poll(url: str, slug: str, access_token: str, wait: float) -> dict:
    """One long-poll after the head with nothing written: how long until it is answered, and how."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token}"
    cursor = _head_cursor(session, url, slug)
    started = time.perf_counter()
    try:
        response = session.get(f"{url}/api/v1/{slug}/events", params={"after": cursor, "wait": wait}, timeout=wait + 30)
        outcome = {"status": response.status_code, "events": len(response.json().get("events", []))}
    except (requests.RequestException, ValueError) as error:
        outcome = {"status": None, "error": f"{type(error).__name__}: {error}"[:300]}
    outcome.update({"wait": wait, "answered_after_s": round(time.perf_counter() - started, 2)})
    return outcome


def _percentiles(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": round(statistics.median(values), 2),
        "p99": round(values[max(0, int(len(values) * 0.99) - 1)], 2),
        "max": round(values[-1], 2),
        "n": len(values),
    }
