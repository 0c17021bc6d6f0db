"""The figures ops watch, read from the database at once (one query each), so every process agrees.

/metrics exposes them (observability/exposition.py); they are plain functions of the database and the
time, so any page or command may read the same ones. Labels are bounded: environment slug and webhook id,
plus fixed sets (outcome, status, condition, error class, task name); never a URL or a name people type.

Histograms (attempt duration, event-to-receipt delay) are over the attempts started in the last WINDOW,
counted per bucket by COUNT(*) FILTER in one query on the attempts' time index: what a scrape reads is
bounded by the traffic of WINDOW, not by the table's size.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum
from django.utils import timezone

from credentials.models import AccessToken, AuthFailure
from environments.models import WorkerHeartbeat
from environments.workers import silent_after
from webhooks.models import Attempt, AttemptHour, Delivery, RollupMark, Webhook
from webhooks.rollup import NAME as ROLLUP

from .models import BeatRun

WINDOW = datetime.timedelta(minutes=15)
# Upper bounds in seconds, as Prometheus' `le`.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELAY_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# What the condition `healthy` is called for ops: active and answering.
CONDITION_NAMES = {"healthy": "active"}


@dataclass
class WebhookFigures:
    """One webhook now: its condition and queue, and its attempts since it was created."""

    id: int
    environment: str
    condition: str  # active, failing, paused, disabled, unverified
    failing_seconds: float
    waiting: int = 0
    oldest_due_seconds: float = 0.0
    attempts_succeeded: int = 0
    attempts_failed: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)  # by status


def webhooks(now: datetime.datetime | None = None) -> list[WebhookFigures]:
    """Every webhook with its condition, waiting deliveries, oldest due age, attempts and deliveries by status."""
    now = now or timezone.now()
    rows = Webhook.objects.order_by("pk").values_list("pk", "environment__slug", "state", "failing_since")
    figures = {}
    for pk, slug, state, failing_since in rows:
        condition = "failing" if state == Webhook.State.ACTIVE and failing_since else state
        failing = (now - failing_since).total_seconds() if condition == "failing" and failing_since else 0.0
        figures[pk] = WebhookFigures(pk, slug, CONDITION_NAMES.get(condition, condition), failing)
    for pk, (count, oldest) in waiting(now).items():
        if pk in figures:
            figures[pk].waiting, figures[pk].oldest_due_seconds = count, oldest
    for pk, (succeeded, failed) in attempt_totals(now).items():
        if pk in figures:
            figures[pk].attempts_succeeded, figures[pk].attempts_failed = succeeded, failed
    for pk, status, n in deliveries_by_status():
        if pk in figures:
            figures[pk].deliveries[status] = n
    return list(figures.values())


def waiting(now: datetime.datetime) -> dict[int, tuple[int, float]]:
    """Per webhook: deliveries waiting (pending or retrying), and how long the longest-due of them has been due.

    Due means its next attempt time has passed; only an active webhook's are due (a paused or unverified
    one keeps its deliveries on purpose). Reads the partial index of waiting deliveries only.
    """
    rows = (
        Delivery.objects.filter(status__in=Delivery.WAITING, is_test=False)
        .values("webhook")
        .annotate(
            n=Count("id"),
            due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now, webhook__state=Webhook.State.ACTIVE)),
        )
        .values_list("webhook", "n", "due")
    )
    return {pk: (n, (now - due).total_seconds() if due else 0.0) for pk, n, due in rows}


def attempt_totals(now: datetime.datetime) -> dict[int, tuple[int, int]]:
    """Per webhook: (succeeded, failed) attempts ever made, test sends excepted (a counter).

    The hourly roll-up (webhooks/rollup.py) holds the count up to its mark; the attempts since the mark,
    a few minutes' worth, are counted from their time index. Roll-up rows pruned make the counter drop,
    which Prometheus reads as a reset.
    """
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for pk, ok, bad in (
        AttemptHour.objects.values("webhook")
        .annotate(ok=Sum("succeeded"), bad=Sum("failed"))
        .values_list("webhook", "ok", "bad")
    ):
        totals[pk][0] += ok or 0
        totals[pk][1] += bad or 0
    mark = RollupMark.objects.filter(name=ROLLUP).values_list("through", flat=True).first()
    recent = Attempt.objects.exclude(trigger=Attempt.Trigger.TEST)
    if mark is not None:
        recent = recent.filter(started_at__gte=mark)
    counted = (
        recent.values(webhook=F("delivery__webhook_id"))
        .annotate(ok=Count("id", filter=Q(succeeded=True)), bad=Count("id", filter=Q(succeeded=False)))
        .values_list("webhook", "ok", "bad")
        .order_by()
    )
    for pk, ok, bad in counted:
        totals[pk][0] += ok
        totals[pk][1] += bad
    return {pk: (ok, bad) for pk, (ok, bad) in totals.items()}


def deliveries_by_status() -> list[tuple[int, str, int]]:
    """(webhook id, status, deliveries stored) for every webhook and status, test sends excepted."""
    return list(
        Delivery.objects.filter(is_test=False)
        .values("webhook", "status")
        .annotate(n=Count("id"))
        .values_list("webhook", "status", "n")
        .order_by()
    )


def webhooks_by_condition(figures: list[WebhookFigures]) -> dict[tuple[str, str], int]:
    """(environment slug, condition) → how many webhooks, every condition present (zeros included)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for slug in {each.environment for each in figures}:
        for condition in ("active", "failing", "paused", "disabled", "unverified"):
            counts[(slug, condition)] = 0
    for each in figures:
        counts[(each.environment, each.condition)] += 1
    return dict(counts)


@dataclass
class Histogram:
    """Cumulative bucket counts (same order as the bounds, then +Inf) and the sum, in seconds."""

    buckets: list[int]
    count: int
    total: float


def recent_attempts(now: datetime.datetime) -> dict[str, dict[str, Histogram]]:
    """Per environment over the last WINDOW: `duration` (every attempt) and `delay` (event to receipt, of the
    attempts that delivered), as histograms. One query, bounded by WINDOW's traffic."""
    delay = ExpressionWrapper(F("delivery__delivered_at") - F("delivery__created_at"), output_field=DurationField())
    received = Q(succeeded=True, delivery__delivered_at__isnull=False)
    aggregates = {
        f"d{i}": Count("id", filter=Q(duration_ms__lte=bound * 1000)) for i, bound in enumerate(DURATION_BUCKETS)
    }
    aggregates |= {
        f"r{i}": Count("id", filter=received & Q(delay__lte=datetime.timedelta(seconds=bound)))
        for i, bound in enumerate(DELAY_BUCKETS)
    }
    rows = (
        Attempt.objects.filter(started_at__gte=now - WINDOW)
        .exclude(trigger=Attempt.Trigger.TEST)
        .annotate(delay=delay)
        .values(slug=F("delivery__environment__slug"))
        .annotate(
            n=Count("id"),
            ms=Sum("duration_ms"),
            received=Count("id", filter=received),
            waited=Sum("delay", filter=received),
            **aggregates,
        )
        .order_by()
    )
    result = {}
    for typed in rows:
        row: dict[str, Any] = dict(typed)  # keyed by the bucket names built above, which mypy cannot know
        waited = row["waited"].total_seconds() if row["waited"] else 0.0
        result[row["slug"]] = {
            "duration": Histogram(
                [row[f"d{i}"] for i in range(len(DURATION_BUCKETS))] + [row["n"]], row["n"], (row["ms"] or 0) / 1000
            ),
            "delay": Histogram(
                [row[f"r{i}"] for i in range(len(DELAY_BUCKETS))] + [row["received"]], row["received"], waited
            ),
        }
    return result


def recent_errors(now: datetime.datetime) -> dict[tuple[str, str], int]:
    """(environment slug, error class) → failed attempts in the last WINDOW. The class is the engine's
    (`timeout`, `connection_refused`… outbound.ERROR_CLASSES) or the answer's (`http_4xx`, `http_5xx`)."""
    rows = (
        Attempt.objects.filter(started_at__gte=now - WINDOW, succeeded=False)
        .exclude(trigger=Attempt.Trigger.TEST)
        .values(slug=F("delivery__environment__slug"), kind=F("error"), code=F("status_code"))
        .annotate(n=Count("id"))
        .values_list("slug", "kind", "code", "n")
        .order_by()
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for slug, error, status, n in rows:
        kind = error or (f"http_{status // 100}xx" if status else "no_answer")
        counts[(slug, kind)] += n
    return dict(counts)


def tokens() -> dict[str, dict[str, int]]:
    """Per environment slug, ever: tokens `issued`, authentications `failed` and `throttled` (counters, from the
    token and failure rows the token endpoint writes; read on their environment indexes)."""
    result: dict[str, dict[str, int]] = defaultdict(lambda: {"issued": 0, "failed": 0, "throttled": 0})
    issued = (
        AccessToken.objects.values("environment__slug").annotate(n=Count("id")).values_list("environment__slug", "n")
    )
    for slug, n in issued.order_by():
        result[slug or ""]["issued"] += n
    failures = (
        AuthFailure.objects.values("environment__slug", "reason")
        .annotate(n=Count("id"))
        .values_list("environment__slug", "reason", "n")
        .order_by()
    )
    for slug, reason, n in failures:
        result[slug or ""]["throttled" if reason == AuthFailure.Reason.THROTTLED else "failed"] += n
    return dict(result)


@dataclass
class Workers:
    """Background workers now: how many reported within the limit, and the age of the latest reports."""

    alive: int
    heartbeat_age_seconds: float | None  # from the queue (a heartbeat task): proves tasks are consumed
    process_age_seconds: float | None  # from a worker process's own thread: proves a process runs


def workers(now: datetime.datetime | None = None) -> Workers:
    """The workers' heartbeats (environments/workers.py), as ages in seconds; None when none ever reported."""
    now = now or timezone.now()
    latest = WorkerHeartbeat.objects.aggregate(
        seen=Max("last_seen"),
        alive_at=Max("alive_at"),
        alive=Count("id", filter=Q(last_seen__gte=now - silent_after())),
    )
    return Workers(
        alive=latest["alive"],
        heartbeat_age_seconds=(now - latest["seen"]).total_seconds() if latest["seen"] else None,
        process_age_seconds=(now - latest["alive_at"]).total_seconds() if latest["alive_at"] else None,
    )


def beat_runs() -> dict[str, datetime.datetime]:
    """Task name → when beat last sent it (observability/beat.py)."""
    return dict(BeatRun.objects.values_list("task", "last_run_at"))
