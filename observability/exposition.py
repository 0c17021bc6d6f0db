"""The figures as Prometheus metric families, collected at scrape time (a prometheus_client custom collector).

Series and their labels (the README's Observability section states the cardinality):
per webhook (`environment`, `webhook` id): condition, failing seconds, waiting, oldest due age, attempts by
outcome, deliveries by status; per environment: webhooks by condition, attempt errors by class, the
duration and delay histograms, tokens; overall: workers, beat's runs (`task`), Data API requests (`status`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import figures

P = "integration"
WEBHOOK = ["environment", "webhook"]


class DatabaseCollector(Collector):
    """Reads the database at each scrape: figures are the same whichever process is scraped."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        hooks = figures.webhooks(now)
        yield from _webhook_families(hooks)
        yield from _environment_families(hooks, now)
        yield from _worker_families(now)


def _webhook_families(hooks: list[figures.WebhookFigures]) -> Iterator[Metric]:
    condition = GaugeMetricFamily(
        f"{P}_webhook_condition", "1 for the webhook's current condition.", labels=[*WEBHOOK, "condition"]
    )
    failing = GaugeMetricFamily(
        f"{P}_webhook_failing_seconds", "How long the webhook has been failing (0 if not).", labels=WEBHOOK
    )
    waiting = GaugeMetricFamily(f"{P}_webhook_deliveries_waiting", "Deliveries pending or retrying.", labels=WEBHOOK)
    oldest = GaugeMetricFamily(
        f"{P}_webhook_oldest_due_seconds",
        "How long the longest-due waiting delivery has been due (0 if none).",
        labels=WEBHOOK,
    )
    attempts = CounterMetricFamily(
        f"{P}_webhook_attempts", "Attempts made, test sends excepted.", labels=[*WEBHOOK, "outcome"]
    )
    deliveries = GaugeMetricFamily(
        f"{P}_webhook_deliveries", "Deliveries stored, by status.", labels=[*WEBHOOK, "status"]
    )
    for hook in hooks:
        labels = [hook.environment, str(hook.id)]
        condition.add_metric([*labels, hook.condition], 1)
        failing.add_metric(labels, hook.failing_seconds)
        waiting.add_metric(labels, hook.waiting)
        oldest.add_metric(labels, hook.oldest_due_seconds)
        attempts.add_metric([*labels, "succeeded"], hook.attempts_succeeded)
        attempts.add_metric([*labels, "failed"], hook.attempts_failed)
        for status in ("pending", "retrying", "succeeded", "failed", "discarded"):
            deliveries.add_metric([*labels, status], hook.deliveries.get(status, 0))
    yield from (condition, failing, waiting, oldest, attempts, deliveries)


def _environment_families(hooks: list[figures.WebhookFigures], now: datetime.datetime) -> Iterator[Metric]:
    by_condition = GaugeMetricFamily(f"{P}_webhooks", "Webhooks by condition.", labels=["environment", "condition"])
    for (slug, condition), n in sorted(figures.webhooks_by_condition(hooks).items()):
        by_condition.add_metric([slug, condition], n)
    errors = GaugeMetricFamily(
        f"{P}_attempt_errors_window",
        "Failed attempts in the last 15 minutes, by error class.",
        labels=["environment", "error_class"],
    )
    for (slug, kind), n in sorted(figures.recent_errors(now).items()):
        errors.add_metric([slug, kind], n)
    yield from (by_condition, errors)
    yield from _histograms(now)
    yield from _token_families()


def _histograms(now: datetime.datetime) -> Iterator[Metric]:
    duration = GaugeHistogramMetricFamily(
        f"{P}_attempt_duration_seconds", "Attempt durations over the last 15 minutes.", labels=["environment"]
    )
    delay = GaugeHistogramMetricFamily(
        f"{P}_event_to_receipt_seconds",
        "From the event's commit to its receipt, over the last 15 minutes.",
        labels=["environment"],
    )
    for slug, pair in sorted(figures.recent_attempts(now).items()):
        for family, bounds, histogram in (
            (duration, figures.DURATION_BUCKETS, pair["duration"]),
            (delay, figures.DELAY_BUCKETS, pair["delay"]),
        ):
            les = [_le(bound) for bound in bounds] + ["+Inf"]
            family.add_metric([slug], list(zip(les, histogram.buckets, strict=True)), histogram.total)
    yield from (duration, delay)


def _le(bound: float) -> str:
    return repr(float(bound))


def _token_families() -> Iterator[Metric]:
    families = {
        kind: CounterMetricFamily(f"{P}_tokens_{kind}", help_text, labels=["environment"])
        for kind, help_text in (
            ("issued", "Access tokens issued by the token endpoint."),
            ("failed", "Failed authentications at the token endpoint (throttled ones excepted)."),
            ("throttled", "Token requests refused by the failed-authentication throttle."),
        )
    }
    for slug, counts in sorted(figures.tokens().items()):
        for kind, family in families.items():
            family.add_metric([slug], counts[kind])
    yield from families.values()


def _worker_families(now: datetime.datetime) -> Iterator[Metric]:
    workers = figures.workers(now)
    yield GaugeMetricFamily(f"{P}_workers_alive", "Workers whose heartbeat is within the limit.", value=workers.alive)
    yield GaugeMetricFamily(
        f"{P}_worker_heartbeat_age_seconds",
        "Seconds since the latest worker heartbeat from the queue (+Inf when none ever reported).",
        value=workers.heartbeat_age_seconds if workers.heartbeat_age_seconds is not None else float("inf"),
    )
    beat = GaugeMetricFamily(
        f"{P}_beat_last_run_timestamp_seconds", "When beat last sent each periodic task.", labels=["task"]
    )
    for task, at in sorted(figures.beat_runs().items()):
        beat.add_metric([task], at.timestamp())
    yield beat
