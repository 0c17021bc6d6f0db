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
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone

from credentials.models import AccessToken, AuthFailure
from environments.models import Environment, WorkerHeartbeat
from environments.workers import silent_after
from webhooks.health import queues
from webhooks.models import Attempt, AttemptHour, RollupMark, Webhook
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
    """One webhook now: its condition and queue, and its attempts today (since 00:00 UTC)."""

    id: int
    environment: str
    condition: str  # active, failing, paused, disabled, unverified
    failing_seconds: float
    waiting: int = 0
    oldest_due_seconds: float = 0.0
    attempts_succeeded: int = 0
    attempts_failed: int = 0


def webhooks(now: datetime.datetime | None = None) -> list[WebhookFigures]:
    """Every webhook with its condition, waiting deliveries, oldest due age and attempts today by outcome."""
    now = now or timezone.now()
    rows = Webhook.objects.order_by("pk").values_list("pk", "environment__slug", "state", "failing_since")
    figures = {}
    for pk, slug, state, failing_since in rows:
        condition = "failing" if state == Webhook.State.ACTIVE and failing_since else state
        failing = (now - failing_since).total_seconds() if condition == "failing" and failing_since else 0.0
        figures[pk] = WebhookFigures(pk, slug, CONDITION_NAMES.get(condition, condition), failing)
    for pk, queue in queues(now=now).items():
        if pk in figures:
            figures[pk].waiting, figures[pk].oldest_due_seconds = queue.waiting, queue.oldest_due_seconds
    for pk, (succeeded, failed) in attempt_totals(now).items():
        if pk in figures:
            figures[pk].attempts_succeeded, figures[pk].attempts_failed = succeeded, failed
    return list(figures.values())


def counting_since(now: datetime.datetime) -> datetime.datetime:
    """Where the counters start: 00:00 UTC today. A counter read from rows must not sum an ever-growing table
    at each scrape; one that restarts daily reads at most a day of them, and Prometheus' rate() and increase()
    take the drop at midnight for the reset it is."""
    return now.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def attempt_totals(now: datetime.datetime) -> dict[int, tuple[int, int]]:
    """Per webhook: (succeeded, failed) attempts since counting_since, test sends excepted (a counter).

    The hourly roll-up (webhooks/rollup.py) holds the count up to its mark, read by hour on an index that
    holds the counts (an index-only scan of today's hours); the attempts since the mark, a few minutes'
    worth, are counted on their time index.
    """
    since = counting_since(now)
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    mark = RollupMark.objects.filter(name=ROLLUP).values_list("through", flat=True).first()
    if mark is not None and mark > since:
        hours = AttemptHour.objects.filter(hour__gte=since).values("webhook")
        for pk, ok, bad in hours.annotate(ok=Sum("succeeded"), bad=Sum("failed")).values_list("webhook", "ok", "bad"):
            totals[pk][0] += ok or 0
            totals[pk][1] += bad or 0
        since = mark
    counted = (
        Attempt.objects.filter(started_at__gte=since)
        .exclude(trigger=Attempt.Trigger.TEST)
        .values("webhook_id")
        .annotate(ok=Count("id", filter=Q(succeeded=True)), bad=Count("id", filter=Q(succeeded=False)))
        .values_list("webhook_id", "ok", "bad")
        .order_by()
    )
    for pk, ok, bad in counted:
        totals[pk][0] += ok
        totals[pk][1] += bad
    return {pk: (ok, bad) for pk, (ok, bad) in totals.items()}


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
    count: int = 0
    total: float = 0.0

    def add(self, counts: list[int], total: float) -> None:
        self.buckets = [mine + theirs for mine, theirs in zip(self.buckets, counts, strict=True)]
        self.count, self.total = self.buckets[-1], self.total + total


@dataclass
class Window:
    """The attempts started in the last WINDOW, per environment slug: durations, event-to-receipt delays of
    those that delivered, failures by error class, and the deliveries whose last attempt it was, by status."""

    duration: dict[str, Histogram]
    delay: dict[str, Histogram]
    errors: dict[tuple[str, str], int]  # (slug, error class)
    deliveries: dict[tuple[str, str], int]  # (slug, status now)


def recent(now: datetime.datetime) -> Window:
    """The last WINDOW's attempts, test sends excepted: one query on the attempts' time index, grouped by the
    few things the figures split on, each bucket a COUNT(*) FILTER; summed per environment here."""
    slugs = dict(Environment.objects.values_list("pk", "slug"))
    window = Window(defaultdict(_durations), defaultdict(_delays), defaultdict(int), defaultdict(int))
    for row in _recent_rows(now):
        slug = slugs.get(row["environment"], "")
        ms = row["ms"] or 0
        window.duration[slug].add([row[f"d{i}"] for i in range(len(DURATION_BUCKETS))] + [row["n"]], ms / 1000)
        waited = row["waited"].total_seconds() if row["waited"] else 0.0
        window.delay[slug].add([row[f"r{i}"] for i in range(len(DELAY_BUCKETS))] + [row["received"]], waited)
        if not row["succeeded"]:
            code = row["code"]
            window.errors[(slug, row["error"] or (f"http_{code // 100}xx" if code else "no_answer"))] += row["n"]
        if row["last"]:
            window.deliveries[(slug, row["status"])] += row["last"]
    return window


def _durations() -> Histogram:
    return Histogram([0] * (len(DURATION_BUCKETS) + 1))


def _delays() -> Histogram:
    return Histogram([0] * (len(DELAY_BUCKETS) + 1))


def _recent_rows(now: datetime.datetime) -> list[dict[str, Any]]:
    delay = ExpressionWrapper(F("delivery__delivered_at") - F("delivery__created_at"), output_field=DurationField())
    received = Q(succeeded=True, delivery__delivered_at__isnull=False)
    buckets = {
        f"d{i}": Count("id", filter=Q(duration_ms__lte=bound * 1000)) for i, bound in enumerate(DURATION_BUCKETS)
    }
    buckets |= {
        f"r{i}": Count("id", filter=received & Q(delay__lte=datetime.timedelta(seconds=bound)))
        for i, bound in enumerate(DELAY_BUCKETS)
    }
    rows = (
        Attempt.objects.filter(started_at__gte=now - WINDOW)
        .exclude(trigger=Attempt.Trigger.TEST)
        .annotate(delay=delay)
        .values(
            "succeeded",
            "error",
            environment=F("delivery__environment_id"),
            status=F("delivery__status"),
            code=F("status_code"),
        )
        .annotate(
            n=Count("id"),
            ms=Sum("duration_ms"),
            received=Count("id", filter=received),
            waited=Sum("delay", filter=received),
            # The delivery's last attempt: each delivery is counted once, in the status it is in now.
            last=Count("id", filter=Q(number=F("delivery__attempt_count"))),
            **buckets,
        )
        .order_by()
    )
    return [dict(row) for row in rows]


def tokens(now: datetime.datetime) -> dict[str, dict[str, int]]:
    """Per environment slug since counting_since: tokens `issued`, authentications `failed` and `throttled`
    (counters, from the token and failure rows the token endpoint writes; read on their environment indexes)."""
    since = counting_since(now)
    result: dict[str, dict[str, int]] = defaultdict(lambda: {"issued": 0, "failed": 0, "throttled": 0})
    issued = (
        AccessToken.objects.filter(issued_at__gte=since)
        .values("environment__slug")
        .annotate(n=Count("id"))
        .values_list("environment__slug", "n")
    )
    for slug, n in issued.order_by():
        result[slug or ""]["issued"] += n
    failures = (
        AuthFailure.objects.filter(at__gte=since)
        .values("environment__slug", "reason")
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
