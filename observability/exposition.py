"""The figures as Prometheus metric families, collected at scrape time (a prometheus_client custom collector).

Series and their labels (the README's Observability section states the cardinality):
per webhook (`environment`, `webhook` id): condition, failing seconds, waiting, oldest due age, attempts by
outcome; per environment: webhooks by condition, deliveries worked on by status, attempt errors by class, the
duration and delay histograms, tokens; overall: workers, beat's runs (`task`), Data API requests (`status`).

`text` writes the families in Prometheus' text format 0.0.4 as prometheus_client's generate_latest does,
without its per-sample checks (sorting and validating every label name): with 1,000 webhooks those took
longer than the queries (190 ms for 12,600 samples against 25 ms here).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator

from django.db import connection, transaction
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import figures

P = "integration"
WEBHOOK = ["environment", "webhook"]


class DatabaseCollector(Collector):
    """Reads the database at each collect: figures are the same whichever process is asked. For a
    prometheus_client registry; /metrics itself uses `scrape`, which writes the same faster."""

    def collect(self) -> Iterator[Metric]:
        hooks, families = _read()
        yield from _webhook_families(hooks)
        yield from families


def scrape() -> str:
    """Every figure in the text format. The per-webhook series (most of them: 6 per webhook) are written
    straight from the figures, without a prometheus_client sample object each (40 ms at 1,000 webhooks)."""
    hooks, families = _read()
    return webhook_text(hooks) + text(iter(families))


def _read() -> tuple[list[figures.WebhookFigures], list[Metric]]:
    """The webhooks' figures and every other family, read in one transaction (one snapshot)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # These queries read a few thousand rows each: starting parallel workers for them cost more than
            # the queries themselves on a busy 2-core host (70 ms of an 80 ms query).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        now = timezone.now()
        hooks = figures.webhooks(now)
        return hooks, [*_environment_families(hooks, now), *_worker_families(now)]


WEBHOOK_SERIES = (
    ("webhook_condition", "gauge", "1 for the webhook's current condition."),
    ("webhook_failing_seconds", "gauge", "How long the webhook has been failing (0 if not)."),
    ("webhook_deliveries_waiting", "gauge", "Deliveries pending or retrying."),
    ("webhook_oldest_due_seconds", "gauge", "How long the longest-due waiting delivery has been due (0 if none)."),
    (
        "webhook_attempts_total",
        "counter",
        "Attempts made since 00:00 UTC (the counter restarts daily), test sends excepted.",
    ),
)


def webhook_text(hooks: list[figures.WebhookFigures]) -> str:
    """The per-webhook families in the text format (the same series as `_webhook_families`)."""
    out: dict[str, list[str]] = {
        name: [f"# HELP {P}_{name} {help_text}", f"# TYPE {P}_{name} {kind}"]
        for name, kind, help_text in WEBHOOK_SERIES
    }
    for hook in hooks:
        labels = f'environment="{_escape(hook.environment)}",webhook="{hook.id}"'
        out["webhook_condition"].append(f'{P}_webhook_condition{{{labels},condition="{hook.condition}"}} 1')
        out["webhook_failing_seconds"].append(
            f"{P}_webhook_failing_seconds{{{labels}}} {_number(hook.failing_seconds)}"
        )
        out["webhook_deliveries_waiting"].append(f"{P}_webhook_deliveries_waiting{{{labels}}} {hook.waiting}")
        out["webhook_oldest_due_seconds"].append(
            f"{P}_webhook_oldest_due_seconds{{{labels}}} {_number(hook.oldest_due_seconds)}"
        )
        out["webhook_attempts_total"].append(
            f'{P}_webhook_attempts_total{{{labels},outcome="succeeded"}} {hook.attempts_succeeded}'
        )
        out["webhook_attempts_total"].append(
            f'{P}_webhook_attempts_total{{{labels},outcome="failed"}} {hook.attempts_failed}'
        )
    return "".join(line + "\n" for lines in out.values() for line in lines)


def text(families: Iterator[Metric]) -> str:
    """The families in Prometheus' text format 0.0.4 (what generate_latest writes for them)."""
    lines = []
    for family in families:
        name, kind = family.name, family.type
        if kind == "counter":
            name = f"{name}_total"
        lines.append(f"# HELP {name} {family.documentation}")
        lines.append(f"# TYPE {name} {'histogram' if kind == 'gaugehistogram' else kind}")
        extra: list[str] = []
        for sample in family.samples:
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels.items())
            line = (
                f"{sample.name}{{{labels}}} {_number(sample.value)}"
                if labels
                else (f"{sample.name} {_number(sample.value)}")
            )
            (extra if sample.name.endswith(("_gsum", "_gcount")) else lines).append(line)
        for suffix in ("_gcount", "_gsum") if kind == "gaugehistogram" else ():
            lines.append(f"# HELP {family.name}{suffix} {family.documentation}")
            lines.append(f"# TYPE {family.name}{suffix} gauge")
            lines.extend(line for line in extra if line.startswith(f"{family.name}{suffix}"))
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    # Slugs and ids need none: look before replacing (a third of the scrape's Python time went here).
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _number(value: float) -> str:
    """Counts as integers (`12`, not `12.0`); anything else as prometheus_client writes it."""
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return floatToGoString(value)


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
        f"{P}_webhook_attempts",
        "Attempts made since 00:00 UTC (the counter restarts daily), test sends excepted.",
        labels=[*WEBHOOK, "outcome"],
    )
    for hook in hooks:
        labels = [hook.environment, str(hook.id)]
        condition.add_metric([*labels, hook.condition], 1)
        failing.add_metric(labels, hook.failing_seconds)
        waiting.add_metric(labels, hook.waiting)
        oldest.add_metric(labels, hook.oldest_due_seconds)
        attempts.add_metric([*labels, "succeeded"], hook.attempts_succeeded)
        attempts.add_metric([*labels, "failed"], hook.attempts_failed)
    yield from (condition, failing, waiting, oldest, attempts)


def _environment_families(hooks: list[figures.WebhookFigures], now: datetime.datetime) -> Iterator[Metric]:
    by_condition = GaugeMetricFamily(f"{P}_webhooks", "Webhooks by condition.", labels=["environment", "condition"])
    for (slug, condition), n in sorted(figures.webhooks_by_condition(hooks).items()):
        by_condition.add_metric([slug, condition], n)
    errors = GaugeMetricFamily(
        f"{P}_attempt_errors_window",
        "Failed attempts in the last 15 minutes, by error class.",
        labels=["environment", "error_class"],
    )
    window = figures.recent(now)
    for (slug, kind), n in sorted(window.errors.items()):
        errors.add_metric([slug, kind], n)
    deliveries = GaugeMetricFamily(
        f"{P}_deliveries_window",
        "Deliveries attempted in the last 15 minutes, by the status they are in now.",
        labels=["environment", "status"],
    )
    for (slug, status), n in sorted(window.deliveries.items()):
        deliveries.add_metric([slug, status], n)
    yield from (by_condition, errors, deliveries)
    yield from _histograms(window)
    yield from _token_families(now)


def _histograms(window: figures.Window) -> Iterator[Metric]:
    duration = GaugeHistogramMetricFamily(
        f"{P}_attempt_duration_seconds", "Attempt durations over the last 15 minutes.", labels=["environment"]
    )
    delay = GaugeHistogramMetricFamily(
        f"{P}_event_to_receipt_seconds",
        "From the event's commit to its receipt, over the last 15 minutes.",
        labels=["environment"],
    )
    for family, bounds, histograms in (
        (duration, figures.DURATION_BUCKETS, window.duration),
        (delay, figures.DELAY_BUCKETS, window.delay),
    ):
        les = [_le(bound) for bound in bounds] + ["+Inf"]
        for slug, histogram in sorted(histograms.items()):
            family.add_metric([slug], list(zip(les, histogram.buckets, strict=True)), histogram.total)
    yield from (duration, delay)


def _le(bound: float) -> str:
    return repr(float(bound))


def _token_families(now: datetime.datetime) -> Iterator[Metric]:
    families = {
        kind: CounterMetricFamily(f"{P}_tokens_{kind}", help_text, labels=["environment"])
        for kind, help_text in (
            ("issued", "Access tokens issued by the token endpoint (since 00:00 UTC: restarts daily)."),
            ("failed", "Failed authentications at the token endpoint (throttled ones excepted)."),
            ("throttled", "Token requests refused by the failed-authentication throttle."),
        )
    }
    for slug, counts in sorted(figures.tokens(now).items()):
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
