"""The delivery ledger's hot path in plain SQL: claim deliveries, load what they carry, record attempts.

On a small machine the ORM's per-query Python cost was most of the time spent
per delivery (22 ms against 11 ms per attempt with plain SQL), so the few
statements every delivery runs are written here, and only here. Table and
column names come from the models' `_meta`, states from the model enums, and
each predicate has a QuerySet twin on `Delivery.objects` (a test checks that
both select the same rows). The SQL is portable: PostgreSQL, and SQLite for
`make run`.

Claiming takes a per-webhook lock first (a transaction-scoped advisory lock
on PostgreSQL, which unlike `FOR UPDATE` writes nothing; SQLite's immediate
transactions serialize writers anyway), so the per-webhook cap on requests in
flight is exact however many workers claim at once, and up to `limit` due
deliveries are leased in one `UPDATE … RETURNING`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast, overload

import psycopg
from django.db import connection, models, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from psycopg import pq as psycopg_pq

from environments.models import Environment, Event

from ..models import Attempt, Delivery, DeliveryEvent, Webhook, WebhookSequence
from ..options import OPTION_NAMES, OptionValues

# A row as a cursor hands it back.
Row = Sequence[Any]


def _table(model: type[models.Model]) -> str:
    return model._meta.db_table


def _column(model: type[models.Model], name: str) -> str:
    """The column of one of the model's concrete fields (the ledger writes nothing else)."""
    column = getattr(model._meta.get_field(name), "column", None)
    if not isinstance(column, str):
        raise LookupError(f"{model.__name__}.{name} is not a column")
    return column


def _quoted(values: Iterable[str]) -> str:
    # Only our own enum values reach this: fixed identifiers, never user input.
    return ", ".join(f"'{value}'" for value in values)


DELIVERY = _table(Delivery)
WEBHOOK = _table(Webhook)
ATTEMPT = _table(Attempt)
DELIVERY_EVENT = _table(DeliveryEvent)
EVENT = _table(Event)
ENVIRONMENT = _table(Environment)
SEQUENCE = _table(WebhookSequence)

# The predicates, each the twin of a `DeliveryQuerySet` method. `%(now)s` is the moment.
DUE_SQL = f"status IN ({_quoted(Delivery.WAITING)}) AND next_attempt_at <= %(now)s"
LEASE_FREE_SQL = "(leased_until IS NULL OR leased_until < %(now)s)"
IN_FLIGHT_SQL = "leased_until >= %(now)s"
_MARK = Delivery.FAN_OUT_LEASE_MARK
FAN_OUT_LEASED_SQL = f"{IN_FLIGHT_SQL} AND substr(lease_owner, 1, {len(_MARK)}) = '{_MARK}'"
_WAITING_OLDER = (
    f"SELECT 1 FROM {DELIVERY} p WHERE p.webhook_id = d.webhook_id AND p.id < d.id"  # noqa: S608
    f" AND p.status IN ({_quoted(Delivery.WAITING)}) AND NOT p.is_test"
)
# The line's value on this backend (a UUID column is text without dashes on SQLite; PostgreSQL reads that too).
_SHARED = f"'{Delivery.SHARED_LINE.hex}'"
_ORDERING = Webhook.Ordering
# Delivery `d` of webhook `w` is the head of its line (the twin of `DeliveryQuerySet.head_of_line`): nothing
# older of its line waits. Each EXISTS is one probe of an index (webhook, record_id, id) or (webhook, status, id).
IN_LINE_SQL = (
    f"(w.ordering = '{_ORDERING.NONE}' OR d.is_test OR CASE"
    f" WHEN w.ordering = '{_ORDERING.STRICT}' OR d.record_id = {_SHARED} THEN NOT EXISTS ({_WAITING_OLDER})"
    f" ELSE NOT EXISTS ({_WAITING_OLDER} AND p.record_id = d.record_id)"
    f" AND NOT EXISTS ({_WAITING_OLDER} AND p.record_id = {_SHARED}) END)"
)
# What a claim of webhook %(webhook)s's deliveries oldest first (ORDER BY id LIMIT n) may take: due ones whose
# line holds nothing older that the same claim could not take too (nothing older of it waits undue, or is
# leased). Older ones it can take come first in id order, so a claim takes a line's changes together and in
# order, to be sent one after another by one owner: strict order keeps its single request in flight and
# still goes in batches. A claim of one delivery by id needs IN_LINE_SQL (nothing older waits at all).
_HOLDS_BACK = (
    "NOT (p.next_attempt_at IS NOT NULL AND p.next_attempt_at <= %(now)s"
    " AND (p.leased_until IS NULL OR p.leased_until < %(now)s))"
)
# For the whole webhook's line, the first delivery that holds back is looked for once per statement (it names
# the webhook by parameter), not once per candidate: a claim under strict order reads its batch, not the
# batch times itself.
_FIRST_HOLDING_BACK = (
    f"COALESCE((SELECT MIN(p.id) FROM {DELIVERY} p WHERE p.webhook_id = %(webhook)s"  # noqa: S608
    f" AND p.status IN ({_quoted(Delivery.WAITING)}) AND NOT p.is_test AND {_HOLDS_BACK}), {2**63 - 1})"
)
IN_LINE_OLDEST_FIRST_SQL = (
    f"(w.ordering = '{_ORDERING.NONE}' OR d.is_test OR CASE"
    f" WHEN w.ordering = '{_ORDERING.STRICT}' OR d.record_id = {_SHARED}"
    f" THEN d.id <= {_FIRST_HOLDING_BACK}"
    f" ELSE NOT EXISTS ({_WAITING_OLDER} AND p.record_id = d.record_id AND {_HOLDS_BACK})"
    f" AND NOT EXISTS ({_WAITING_OLDER} AND p.record_id = {_SHARED} AND {_HOLDS_BACK}) END)"
)
# The webhook's gate is open: no 429 slow-down and no rate-limit wait in force.
GATE_OPEN_SQL = (
    "(w.slowed_until IS NULL OR w.slowed_until <= %(now)s)"
    " AND (w.max_per_second IS NULL OR w.rate_next_at IS NULL OR w.rate_next_at <= %(now)s)"
)
# The webhooks of the environment of webhook `%(which)s`: an environment's leases are counted through its
# webhooks, so each count reads the (webhook, leased_until) index of leases, never the environment's history.
_ENV_WEBHOOKS_SQL = (
    f"SELECT ew.id FROM {WEBHOOK} ew WHERE ew.environment_id ="  # noqa: S608
    f" (SELECT ow.environment_id FROM {WEBHOOK} ow WHERE ow.id = %(which)s)"
)
# A webhook's sending slots: its own cap (one for strict order).
CAP_SQL = f"(CASE WHEN w.ordering = '{_ORDERING.STRICT}' THEN 1 ELSE w.max_in_flight END)"
# A webhook's due deliveries that no one is sending, at the head of their lines: asked before a drain, after
# each recorded batch, and by the fan-out (which leases nothing ahead of them). Not its gate: a claim that
# finds it closed queues the drain that sends them when it opens.
_WAITS_UNLEASED_SQL = (
    f"SELECT 1 FROM {DELIVERY} d JOIN {WEBHOOK} w ON w.id = d.webhook_id WHERE d.webhook_id = %(webhook)s"  # noqa: S608
    f" AND {DUE_SQL} AND {LEASE_FREE_SQL} AND {IN_LINE_OLDEST_FIRST_SQL}"
)
_HAS_DUE_SQL = f"SELECT EXISTS ({_WAITS_UNLEASED_SQL})"
# The same, at the database's clock when it runs: a delivery committed before it is due by then,
# whatever moment the caller took before sending it.
_HAS_DUE_AFTER_COMMIT_SQL = _HAS_DUE_SQL.replace("%(now)s", "clock_timestamp()")
# How many owners hold a webhook's sending slots (leases in flight).
_SLOTS_TAKEN_SQL = (
    f"SELECT COUNT(DISTINCT lease_owner) FROM {DELIVERY} WHERE webhook_id = %(webhook)s AND {IN_FLIGHT_SQL}"  # noqa: S608
)


def db_time(moment: datetime.datetime) -> Any:
    """A moment as the database takes it as a query parameter."""
    return connection.ops.adapt_datetimefield_value(moment)


@overload
def from_db_time(value: datetime.datetime | str) -> datetime.datetime: ...
@overload
def from_db_time(value: None) -> None: ...
def from_db_time(value: datetime.datetime | str | None) -> datetime.datetime | None:
    """A moment as the database hands it back (SQLite: text, perhaps naive), as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=datetime.UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class Target(OptionValues):
    """What sending needs of a webhook: its state, keys version and options (`target.timeout_seconds`…)."""

    id: int
    url: str
    state: str
    security_method: str
    keys_version: int
    failing_since: datetime.datetime | None
    environment_id: int
    rate_next_at: datetime.datetime | None
    slowed_until: datetime.datetime | None

    @property
    def is_active(self) -> bool:
        return self.state == Webhook.State.ACTIVE

    @property
    def cap(self) -> int:
        """Its sending slots: requests in flight at once (one for strict order)."""
        return 1 if self.ordering == Webhook.Ordering.STRICT else self.max_in_flight

    def gate_opens_at(self, now: datetime.datetime) -> datetime.datetime | None:
        """When its next request may start, if not now: a 429's slow-down or the rate limit's spacing."""
        holds = [moment for moment in (self.slowed_until, self.rate_next_at if self.max_per_second else None) if moment]
        later = max(holds, default=None)
        return later if later is not None and later > now else None


_MOMENTS = ("failing_since", "rate_next_at", "slowed_until")
_TARGET_FIELDS = [
    "id", "url", "state", "security_method", "keys_version", "failing_since", "environment_id", "rate_next_at",
    "slowed_until", *OPTION_NAMES,
]  # fmt: skip
_TARGET_COLUMNS = ", ".join(
    f"w.{_column(Webhook, 'environment') if name == 'environment_id' else _column(Webhook, name)}"
    for name in _TARGET_FIELDS
)


@dataclass
class Claimed:
    """A leased delivery: what one attempt needs of it."""

    id: int
    message_id: str
    body: str
    attempt_count: int
    status: str
    is_test: bool
    probes: int
    next_attempt_at: datetime.datetime | None
    # Set when a worker stopped while sending it: the claimer records that attempt first (`record_interrupted`).
    sending_since: datetime.datetime | None

    @property
    def is_waiting(self) -> bool:
        return self.status in Delivery.WAITING


_CLAIMED_FIELDS = [
    "id", "message_id", "body", "attempt_count", "status", "is_test", "probes", "next_attempt_at", "sending_since",
]  # fmt: skip


def lease_seconds(timeout_seconds: float, margin: float) -> float:
    """How long a lease lasts: one attempt's timeout (which the deadline keeps to within a second), plus margin.

    A worker sending a batch starts no attempt that could end after its lease.
    """
    return timeout_seconds + 1 + margin


# The first key of the per-webhook advisory locks (the second is the webhook's id).
_ADVISORY_LOCK_SPACE = 4711
# Claims queue behind each other on a webhook's lock for a few ms at most. A change's transaction holds it
# from its fan-out to its commit, which for one that writes many records takes longer: a claim gives up
# after this long rather than hold a worker thread (see ClaimBusy).
CLAIM_LOCK_WAIT_MS = 250


class ClaimBusy(Exception):
    """The webhook's claim lock stayed taken longer than CLAIM_LOCK_WAIT_MS; nothing was leased."""


def _claim_sql(
    *, by_delivery: bool, manual: bool, lease: str, statuses: tuple[str, ...] = (), in_line: bool = False
) -> tuple[str, str]:
    """The two statements of a claim: take the webhook's claim lock (reading its row), then lease its deliveries.

    The lease statement states every rule itself (due, lease free, webhook
    active, in its line, the gate open, fewer than the webhook's cap of other
    owners in flight, and fewer than the environment's), so nothing is decided
    in Python between the two and both can go to PostgreSQL in one round trip.
    Run after the lock, in READ COMMITTED, it sees every lease committed before.
    The counts name the webhook by parameter, not by the row at hand, so the
    database counts once per claim, not once per candidate delivery.
    """
    target_columns = _TARGET_COLUMNS
    if connection.vendor == "postgresql":
        target_columns = f"pg_advisory_xact_lock({_ADVISORY_LOCK_SPACE}, w.id::integer), " + target_columns
    claimable = f"{LEASE_FREE_SQL}" if manual else f"{DUE_SQL} AND {LEASE_FREE_SQL}"
    if statuses:
        # A bulk re-send: only while the delivery still needs it (a retry may have delivered it a moment ago).
        claimable += f" AND status IN ({_quoted(statuses)}) AND payload_erased_at IS NULL"
    if by_delivery:
        which_webhook = f"(SELECT webhook_id FROM {DELIVERY} WHERE id = %(delivery)s AND {claimable})"  # noqa: S608
        which_deliveries = "d.id = %(delivery)s"
    else:
        which_webhook = "%(webhook)s"
        which_deliveries = "d.webhook_id = %(webhook)s"
    lock_sql = f"SELECT {target_columns} FROM {WEBHOOK} w WHERE w.id = {which_webhook}"  # noqa: S608
    conditions = [which_deliveries, claimable, GATE_OPEN_SQL]
    if statuses or not manual:
        conditions.append(f"w.state = '{Webhook.State.ACTIVE}'")
    if not manual:
        conditions.append(IN_LINE_SQL if by_delivery else IN_LINE_OLDEST_FIRST_SQL)
    elif in_line:
        # A bulk re-send or probe of an ordered webhook keeps the order of what still waits.
        conditions.append(f"(d.status NOT IN ({_quoted(Delivery.WAITING)}) OR {IN_LINE_SQL})")
    # Every send, scheduled or by hand, takes one of the webhook's slots and one of its environment's.
    others_in_flight = f"{IN_FLIGHT_SQL} AND o.lease_owner <> %(owner)s"
    conditions.append(
        f"(SELECT COUNT(DISTINCT o.lease_owner) FROM {DELIVERY} o WHERE o.webhook_id = {which_webhook}"  # noqa: S608
        f" AND {others_in_flight}) < {CAP_SQL}"
    )
    conditions.append(
        f"(SELECT COUNT(DISTINCT o.lease_owner) FROM {DELIVERY} o WHERE o.webhook_id IN ({_ENV_WEBHOOKS_SQL})"  # noqa: S608
        f" AND {others_in_flight}) < %(env_cap)s".replace("%(which)s", which_webhook)
    )
    returning = ", ".join(_column(Delivery, name) for name in _CLAIMED_FIELDS)
    lease_sql = (
        f"UPDATE {DELIVERY} SET leased_until = {lease}, lease_owner = %(owner)s WHERE id IN"  # noqa: S608
        f" (SELECT d.id FROM {DELIVERY} d JOIN {WEBHOOK} w ON w.id = d.webhook_id"
        f" WHERE {' AND '.join(conditions)} ORDER BY d.id LIMIT %(limit)s) RETURNING {returning}"
    )
    return lock_sql, lease_sql


# On PostgreSQL the lease's end is computed in SQL from the webhook's timeout, so no result is
# needed between the statements; elsewhere it is computed in Python from the locked row.
_PG_LEASE = (
    f"%(now)s + ((SELECT timeout_seconds FROM {WEBHOOK} WHERE id = {DELIVERY}.webhook_id) + %(extra)s)"  # noqa: S608
    " * interval '1 second'"
)


def claim(
    *,
    owner: str,
    now: datetime.datetime,
    env_cap: int,
    margin: float,
    delivery_id: int | None = None,
    webhook_id: int | None = None,
    limit: int = 1,
    manual: bool = False,
    statuses: tuple[str, ...] = (),
    in_line: bool = False,
) -> tuple[Target | None, list[Claimed], dict[int, list[EventRow]] | None]:
    """Lease deliveries for `owner`: one by id, or up to `limit` of a webhook's due ones, oldest first.

    Every claim needs the webhook's gate open (no 429 slow-down or rate-limit
    wait in force), fewer than its cap (`Target.cap`) of other owners holding
    its leases, and fewer than `env_cap` holding its environment's. Scheduled
    claims take only due deliveries of an active webhook at the head of their
    line. Manual claims (test, re-send, probe) take the delivery whatever its
    schedule, if no one is sending it; with `statuses`, only while it is in one
    of them, its payload kept and its webhook active (checked in the claim
    itself, so nothing another worker delivered since is sent again); with
    `in_line`, a waiting one only at the head of its line. Returns the webhook
    (even when nothing was leased), the leased deliveries and, for a claim by
    id on PostgreSQL, the events it carries (read in the same round trip; None
    when they were not read).
    """
    params = {
        "now": db_time(now),
        "owner": owner,
        "env_cap": env_cap,
        "limit": limit,
        "delivery": delivery_id,
        "webhook": webhook_id,
        "extra": 1 + margin,
    }
    if _can_pipeline():
        try:
            target, rows, events = _claim_pipelined(
                params, by_delivery=delivery_id is not None, manual=manual, statuses=statuses, in_line=in_line
            )
        except psycopg.errors.LockNotAvailable as busy:  # the pipeline is PostgreSQL's: psycopg raises it
            raise ClaimBusy from busy
    else:
        target, rows = _claim_in_transaction(
            params,
            by_delivery=delivery_id is not None,
            manual=manual,
            margin=margin,
            statuses=statuses,
            in_line=in_line,
        )
        events = None
    return target, _claimed(rows), events


def _claimed(rows: Sequence[Row]) -> list[Claimed]:
    claimed = [Claimed(*row) for row in rows]
    for each in claimed:
        each.is_test = bool(each.is_test)
        each.next_attempt_at = from_db_time(each.next_attempt_at)
        each.sending_since = from_db_time(each.sending_since)
    claimed.sort(key=lambda each: each.id)
    return claimed


def _can_pipeline() -> bool:
    # An outer transaction (tests, a caller's atomic block) is Django's to manage: then statement by statement.
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _hot_cursor() -> psycopg.Cursor[Any] | CursorWrapper:
    """A cursor for the sending path's reads: on PostgreSQL the driver's own, skipping Django's health check
    (a round trip of its own before each task's first query); a broken connection raises, and the caller
    reconnects."""
    if _can_pipeline():
        connection.ensure_connection()
        raw: psycopg.Connection[Any] = connection.connection
        return raw.cursor()
    return connection.cursor()


@contextlib.contextmanager
def _pipeline() -> Iterator[psycopg.Connection[Any]]:
    """The raw psycopg connection in pipeline mode: what is executed inside goes in one round trip.

    Transactions inside it are written out (`_transaction`): psycopg's own
    `transaction()` sends its BEGIN and COMMIT each in a round trip of its own,
    which cost as much again as the statements between them. If anything
    fails, an open transaction is rolled back before the error goes on.
    """
    connection.ensure_connection()
    raw = connection.connection
    try:
        with raw.pipeline():
            yield raw
    except BaseException:
        if raw.info.transaction_status != psycopg_pq.TransactionStatus.IDLE:
            with contextlib.suppress(Exception):  # a broken connection cannot roll back; it is dropped anyway
                raw.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _transaction(raw: psycopg.Connection[Any]) -> Iterator[None]:
    """BEGIN … COMMIT, queued in the pipeline around the statements executed inside."""
    raw.execute("BEGIN")
    yield
    raw.execute("COMMIT")


def _claim_pipelined(
    params: dict[str, Any], *, by_delivery: bool, manual: bool, statuses: tuple[str, ...], in_line: bool
) -> tuple[Target | None, list[Row], dict[int, list[EventRow]] | None]:
    lock_sql, lease_sql = _claim_sql(
        by_delivery=by_delivery, manual=manual, lease=_PG_LEASE, statuses=statuses, in_line=in_line
    )
    with _pipeline() as raw, _transaction(raw):
        lock_cursor, lease_cursor, events_cursor = raw.cursor(), raw.cursor(), raw.cursor()
        # A lease lost in a database crash only lets the delivery be claimed again (at least once
        # holds), so the claim need not wait for its commit to reach the disk.
        lock_cursor.execute("SET LOCAL synchronous_commit TO OFF")
        lock_cursor.execute(f"SET LOCAL lock_timeout = {CLAIM_LOCK_WAIT_MS}")
        lock_cursor.execute(lock_sql, params)
        lease_cursor.execute(lease_sql, params)
        if by_delivery:
            events_cursor.execute(_EVENTS_SQL.format(ids="%(delivery)s"), params)
    target = _target(_without_lock_column(lock_cursor.fetchone()))
    rows = lease_cursor.fetchall()
    events = _events_from([params["delivery"]], events_cursor.fetchall()) if by_delivery else None
    return target, rows, events


def _claim_in_transaction(
    params: dict[str, Any], *, by_delivery: bool, manual: bool, margin: float, statuses: tuple[str, ...], in_line: bool
) -> tuple[Target | None, list[Row]]:
    lock_sql, lease_sql = _claim_sql(
        by_delivery=by_delivery, manual=manual, lease="%(lease)s", statuses=statuses, in_line=in_line
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(lock_sql, params)
        target = _target(_without_lock_column(cursor.fetchone()))
        if target is None:
            return None, []
        lease = from_db_time(params["now"]) + datetime.timedelta(seconds=lease_seconds(target.timeout_seconds, margin))
        cursor.execute(lease_sql, {**params, "lease": db_time(lease)})
        return target, cursor.fetchall()


def _without_lock_column(row: Row | None) -> Row | None:
    return row[1:] if row is not None and connection.vendor == "postgresql" else row


def _target(row: Row | None) -> Target | None:
    if row is None:
        return None
    named = dict(zip(_TARGET_FIELDS, row, strict=True))
    options = {}
    for name in OPTION_NAMES:
        model_field = cast("models.Field[Any, Any]", Webhook._meta.get_field(name))
        value = named.pop(name)
        # The same conversion the ORM applies (JSON text to a dict, SQLite's 0/1 to a bool).
        if hasattr(model_field, "from_db_value"):
            value = model_field.from_db_value(value, None, connection)
        options[name] = model_field.to_python(value)
    for name in _MOMENTS:
        named[name] = from_db_time(named[name])
    return Target(**named, **options)


def may_lease_at_fan_out(
    webhook_id: int, now: datetime.datetime, cap: int, *, env_cap: int, line: uuid.UUID | None = None
) -> bool:
    """Whether a new delivery of this webhook may be leased in the event's own transaction.

    Yes when fewer than `cap` owners hold its sending slots (and fewer than
    `env_cap` its environment's), none of its due deliveries waits unleased
    (those go first: oldest first) and, for an ordered webhook (`line` given:
    the new delivery's record, or SHARED_LINE for strict order), nothing of its
    line waits at all. On PostgreSQL this takes the webhook's claim lock, which
    keeps the cap exact, but never waits for it: a transaction that would wait,
    or two that would lock webhooks in opposite orders, leave the delivery to a
    worker's claim. The lock is taken in a statement of its own so that the
    count, in the next one, sees every lease committed before it was granted.
    """
    params = {"webhook": webhook_id, "now": db_time(now), "cap": cap, "env_cap": env_cap, "line": line}
    line_sql = ""
    if line is not None:
        waiting = (
            f"SELECT 1 FROM {DELIVERY} p WHERE p.webhook_id = %(webhook)s"  # noqa: S608
            f" AND p.status IN ({_quoted(Delivery.WAITING)}) AND NOT p.is_test"
        )
        if line != Delivery.SHARED_LINE:
            waiting += f" AND (p.record_id = %(line)s OR p.record_id = {_SHARED})"
        line_sql = f" AND NOT EXISTS ({waiting})"
    env_slots = (
        f"SELECT COUNT(DISTINCT lease_owner) FROM {DELIVERY} WHERE webhook_id IN"  # noqa: S608
        f" ({_ENV_WEBHOOKS_SQL.replace('%(which)s', '%(webhook)s')}) AND {IN_FLIGHT_SQL}"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SELECT pg_try_advisory_xact_lock({_ADVISORY_LOCK_SPACE}, %(webhook)s)", params)
            if not cursor.fetchone()[0]:
                return False
        cursor.execute(
            f"SELECT ({_SLOTS_TAKEN_SQL}) < %(cap)s AND ({env_slots}) < %(env_cap)s"
            f" AND NOT EXISTS ({_WAITS_UNLEASED_SQL}){line_sql}",
            params,
        )
        return bool(cursor.fetchone()[0])


# Transactions that emit events for a webhook whose order is commit order across records take this lock
# (until they commit), so that its deliveries' ids follow commit order (see `hold_commit_order`).
_ORDER_LOCK_SPACE = 4712


def hold_commit_order(webhook_id: int) -> None:
    """Make this transaction's deliveries of the webhook commit in id order with everyone else's.

    A delivery's id is taken when it is written, not when it commits: two
    changes could commit in the other order, and a worker could send the later
    id before the earlier one is visible. Changes of one record cannot (the
    record's row lock orders them), so per-record lines need nothing; strict
    order and the shared line take this transaction-scoped lock, and so
    serialize the changes that feed such a webhook from its fan-out to their
    commit: the cost of that order. SQLite has one writer at a time anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ORDER_LOCK_SPACE, webhook_id])


def slots_taken(webhook_id: int, now: datetime.datetime, cap: int) -> bool:
    """Whether all `cap` of the webhook's sending slots are held: a plain read.

    Asked by the fan-out after a change commits, for a delivery it did not
    lease: each holder looks for due deliveries after recording (see `record`)
    and goes on sending them, so a task for this one would find no slot and do nothing.
    """
    with connection.cursor() as cursor:
        cursor.execute(_SLOTS_TAKEN_SQL, {"webhook": webhook_id, "now": db_time(now)})
        taken: int = cursor.fetchone()[0]
        return taken >= cap


_CLAIMED_COLUMNS = ", ".join(f"d.{_column(Delivery, name)}" for name in _CLAIMED_FIELDS)
# The predicates name the delivery's columns unqualified; the webhook has none of them.
_FAN_OUT_LEASED_ROW_SQL = (
    f"SELECT {_TARGET_COLUMNS}, {_CLAIMED_COLUMNS} FROM {DELIVERY} d JOIN {WEBHOOK} w ON w.id = d.webhook_id"  # noqa: S608
    f" WHERE d.id = %(delivery)s AND {FAN_OUT_LEASED_SQL} AND {DUE_SQL} AND w.state = '{Webhook.State.ACTIVE}'"
)


def load_fan_out_leased(delivery_id: int, now: datetime.datetime) -> tuple[Target | None, list[Claimed]]:
    """A delivery the fan-out leased, still due, of a webhook still active: its webhook and itself.

    A plain read of one row, no lock and no write: the only task that can meet
    a fan-out's lease is the one that fan-out queued (a retry is queued after
    its lease is given back; drains, the sweeper and manual sends take only
    free deliveries), and its body was rendered with the lease. Returns
    (None, []) when the delivery is not so leased; the caller then claims it the usual way.
    """
    with _hot_cursor() as cursor:
        cursor.execute(_FAN_OUT_LEASED_ROW_SQL, {"delivery": delivery_id, "now": db_time(now)})
        row = cursor.fetchone()
    if row is None:
        return None, []
    width = len(_TARGET_FIELDS)
    return _target(row[:width]), _claimed([row[width:]])


def has_due(webhook_id: int, now: datetime.datetime) -> bool:
    """Whether the webhook has a due delivery no one is sending: a plain read, before taking any lock."""
    with connection.cursor() as cursor:
        cursor.execute(_HAS_DUE_SQL, {"webhook": webhook_id, "now": db_time(now)})
        return bool(cursor.fetchone()[0])


@dataclass
class EventRow:
    uid: uuid.UUID
    type: str
    occurred_at: datetime.datetime
    environment_slug: str
    data: dict
    # Its number in the webhook's sequence (None for tests and heartbeats, which have none).
    sequence: int | None = None


# A delivery's events in their webhook's order: by number (a batch's numbers follow the order they joined
# it), then by id (tests and heartbeats, unnumbered, carry one event).
_EVENTS_SQL = (
    f"SELECT de.delivery_id, e.uid, e.type, e.occurred_at, env.slug, e.data, de.sequence"  # noqa: S608
    f" FROM {DELIVERY_EVENT} de"
    f" JOIN {EVENT} e ON e.id = de.event_id JOIN {ENVIRONMENT} env ON env.id = e.environment_id"
    " WHERE de.delivery_id IN ({ids}) ORDER BY de.delivery_id, de.sequence, e.id"
)


def events_of(delivery_ids: list[int]) -> dict[int, list[EventRow]]:
    """The events each delivery carries, in order, for all of them in one query."""
    if not delivery_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_EVENTS_SQL.format(ids=", ".join(["%s"] * len(delivery_ids))), delivery_ids)
        return _events_from(delivery_ids, cursor.fetchall())


def _events_from(delivery_ids: list[int], rows: Iterable[Row]) -> dict[int, list[EventRow]]:
    events: dict[int, list[EventRow]] = {delivery_id: [] for delivery_id in delivery_ids}
    for delivery_id, uid, event_type, occurred_at, slug, data, sequence in rows:
        uid = uid if isinstance(uid, uuid.UUID) else uuid.UUID(uid)
        events[delivery_id].append(EventRow(uid, event_type, from_db_time(occurred_at), slug, _json(data), sequence))
    return events


# Take the next number of each webhook: one statement, its rows in webhook id order, so that two writers
# lock the counters they share in the same order. A webhook without a counter row yet starts at 1.
_NEXT_NUMBER_SQL = (
    f"INSERT INTO {SEQUENCE} ({_column(WebhookSequence, 'webhook')}, last) VALUES {{values}}"  # noqa: S608
    f" ON CONFLICT ({_column(WebhookSequence, 'webhook')}) DO UPDATE SET last = {SEQUENCE}.last + 1"
    f" RETURNING {_column(WebhookSequence, 'webhook')}, last"
)


def next_numbers(webhook_ids: Iterable[int]) -> dict[int, int]:
    """The next number of each of these webhooks' sequences, taken in the caller's transaction.

    Each counter row stays locked until that transaction ends: a writer that
    rolls back gives its number back, and the next writer of the webhook waits
    for this one's commit, so numbers are gapless and in commit order per
    webhook. That wait is the cost: writers feeding one webhook serialise from
    their fan-out to their commit. Rows are locked in webhook id order.
    """
    ordered = sorted(set(webhook_ids))
    if not ordered:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_NUMBER_SQL.format(values=", ".join(["(%s, 1)"] * len(ordered))), ordered)
        return {webhook_id: last for webhook_id, last in cursor.fetchall()}


_ATTEMPT_COLUMNS = [
    "delivery_id", "webhook_id", "number", "trigger", "started_at", "duration_ms", "url", "request_headers",
    "status_code", "response_headers", "response_body", "error", "error_detail", "succeeded", "triggered_by",
]  # fmt: skip
_JSON_COLUMNS = {"request_headers", "response_headers"}


@dataclass(slots=True)
class DeliveryUpdate:
    """A delivery's new state after an attempt (`retry_policy.after_attempt` decides it, `record` writes it).

    Each field is a column of the delivery, written as it is; `lease_owner` and
    `leased_until` are always cleared besides.
    """

    status: str
    body: str
    attempt_count: int
    probes: int
    last_attempt_at: datetime.datetime
    last_status_code: int | None
    last_error: str
    last_duration_ms: int
    next_attempt_at: datetime.datetime | None = None
    enqueued_at: datetime.datetime | None = None
    delivered_at: datetime.datetime | None = None


# What a recorded attempt may change on its delivery: the fields of `DeliveryUpdate`, in order.
DELIVERY_UPDATE_COLUMNS = [each.name for each in dataclasses.fields(DeliveryUpdate)]


def _value(value: Any) -> Any:
    return db_time(value) if isinstance(value, datetime.datetime) else value


def _attempt_rows(attempts: list[Attempt]) -> tuple[str, list]:
    related = {"delivery_id": _column(Attempt, "delivery"), "webhook_id": _column(Attempt, "webhook")}
    columns = [related.get(name, name) for name in _ATTEMPT_COLUMNS]
    values = []
    for attempt in attempts:
        for name in _ATTEMPT_COLUMNS:
            value = getattr(attempt, name)
            values.append(json.dumps(value) if name in _JSON_COLUMNS else _value(value))
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {ATTEMPT} ({', '.join(columns)}) VALUES {', '.join([placeholders] * len(attempts))}"  # noqa: S608
        " RETURNING id"
    )
    return sql, values


# The SQL types of `DeliveryUpdate`'s columns, so that a VALUES list of them (NULLs too) needs no guessing.
_DELIVERY_UPDATE_TYPES = {
    "status": "text",
    "body": "text",
    "attempt_count": "integer",
    "probes": "integer",
    "last_attempt_at": "timestamptz",
    "last_status_code": "integer",
    "last_error": "text",
    "last_duration_ms": "integer",
    "next_attempt_at": "timestamptz",
    "enqueued_at": "timestamptz",
    "delivered_at": "timestamptz",
}
_RELEASED = "leased_until = NULL, lease_owner = '', sending_since = NULL"


def _delivery_updates(updates: dict[int, DeliveryUpdate]) -> tuple[str, list, bool]:
    """The statement that writes each delivery's new state and gives its lease back: on PostgreSQL one UPDATE
    from a VALUES list (a batch's fifty updates one by one took most of its recording), else one per delivery.
    Returns (sql, params, whether params are rows for executemany)."""
    rows = [
        [_value(getattr(update, name)) for name in DELIVERY_UPDATE_COLUMNS] + [pk] for pk, update in updates.items()
    ]
    if connection.vendor != "postgresql":
        assignments = ", ".join(f"{_column(Delivery, name)} = %s" for name in DELIVERY_UPDATE_COLUMNS)
        return f"UPDATE {DELIVERY} SET {assignments}, {_RELEASED} WHERE id = %s", rows, True  # noqa: S608
    typed = ", ".join(f"%s::{_DELIVERY_UPDATE_TYPES[name]}" for name in DELIVERY_UPDATE_COLUMNS) + ", %s::bigint"
    names = ", ".join([*DELIVERY_UPDATE_COLUMNS, "id"])
    assignments = ", ".join(f"{_column(Delivery, name)} = v.{name}" for name in DELIVERY_UPDATE_COLUMNS)
    sql = (
        f"UPDATE {DELIVERY} AS d SET {assignments}, {_RELEASED}"  # noqa: S608
        f" FROM (VALUES {', '.join([f'({typed})'] * len(rows))}) AS v({names}) WHERE d.id = v.id"
    )
    return sql, [value for row in rows for value in row], False


def _release_sql(delivery_ids: list[int]) -> str:
    return (
        f"UPDATE {DELIVERY} SET leased_until = NULL, lease_owner = '', sending_since = NULL WHERE id IN"  # noqa: S608
        f" ({', '.join(['%s'] * len(delivery_ids))})"
    )


def _recorded_attempt_ids(attempts: list[Attempt]) -> list[int] | None:
    """The ids of these attempts if a batch that wrote them committed (all of them: one transaction), else None."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {_column(Attempt, 'delivery')}, number FROM {ATTEMPT}"  # noqa: S608
            f" WHERE {_column(Attempt, 'delivery')} IN ({', '.join(['%s'] * len(attempts))})",
            [attempt.delivery_id for attempt in attempts],
        )
        ids = {(delivery_id, number): pk for pk, delivery_id, number in cursor.fetchall()}
    found = [ids.get((attempt.delivery_id, attempt.number)) for attempt in attempts]
    if not all(found):
        return None
    return [pk for pk in found if pk is not None]


def _has_due_after_commit(webhook_id: int) -> bool:
    if connection.vendor != "postgresql":
        return has_due(webhook_id, timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_HAS_DUE_AFTER_COMMIT_SQL, {"webhook": webhook_id})
        return bool(cursor.fetchone()[0])


@dataclass
class Recorded:
    """What recording a batch found out about its webhook."""

    recovered: bool  # it was failing and has now answered 2xx
    more_due: bool  # it has due deliveries that no one is sending


# Whichever batch clears `failing_since` is the one that saw the recovery.
_RECOVERED_SQL = (
    f"UPDATE {WEBHOOK} SET last_triggered_at = %(now)s, failing_since = NULL"  # noqa: S608
    " WHERE id = %(webhook)s AND failing_since IS NOT NULL RETURNING id"
)
# When a request was last sent to the webhook, whatever it was (a heartbeat's clock: webhooks/heartbeats.py).
# At most once a second: under load every batch would queue on this row's lock.
_SENT_SQL = (
    f"UPDATE {WEBHOOK} SET last_triggered_at = %(now)s WHERE id = %(webhook)s"  # noqa: S608
    " AND (last_triggered_at IS NULL OR last_triggered_at < %(second_ago)s)"
)


def _commit_then_look(
    statements: list[tuple[str, Any, bool]], webhook_params: dict[str, Any]
) -> tuple[list[Any], bool]:
    """Run the statements in one transaction, then (after the commit) ask whether the webhook has more
    due: on PostgreSQL in one pipelined round trip. Returns each statement's rows (None when it returns
    none) and that answer."""
    if _can_pipeline():
        with _pipeline() as raw:
            cursors = [raw.cursor() for _ in statements]
            with _transaction(raw):
                for cursor, (sql, params, many) in zip(cursors, statements, strict=True):
                    (cursor.executemany if many else cursor.execute)(sql, params)
            due_cursor = raw.cursor()
            due_cursor.execute(_HAS_DUE_AFTER_COMMIT_SQL, webhook_params)
        results: list[Any] = [cursor.fetchall() if cursor.description else None for cursor in cursors]
        return results, bool(cast(Row, due_cursor.fetchone())[0])  # SELECT EXISTS always returns its one row
    results = []
    with transaction.atomic(), connection.cursor() as django_cursor:
        for sql, params, many in statements:
            (django_cursor.executemany if many else django_cursor.execute)(sql, params)
            results.append(django_cursor.fetchall() if django_cursor.description else None)
    return results, _has_due_after_commit(webhook_params["webhook"])


def record(
    attempts: list[Attempt],
    updates: dict[int, DeliveryUpdate],
    unsent: list[int],
    *,
    webhook_id: int,
    now: datetime.datetime,
    succeeded: bool,
    again: bool = False,
) -> Recorded:
    """In one transaction: insert a batch's attempts (one statement), write each delivery's new state and
    give its lease back (one statement), give back the leases of deliveries left unsent, note on the
    webhook that it answered when `succeeded` (a real delivery's success), and when a request was last sent
    to it (any attempt, tests and heartbeats too: `last_triggered_at`, to the second). Then, once that has
    committed, look whether more of its deliveries are due.

    Looking only after the commit is what lets the fan-out leave a new delivery to the webhook's
    senders when all its slots are taken (`slots_taken`): either this look sees that delivery, or
    the fan-out, which looks after its own commit, saw this batch's slot given back.

    On PostgreSQL all of it is one round trip (a pipeline). Sets each attempt's pk.

    `again` says an earlier try's connection broke, perhaps after its commit:
    if the batch's attempts are there, nothing is written twice. Whether that
    commit ended a failing spell is then unknown, so a success counts as a
    recovery (its only effect: waiting deliveries are sent now).
    """
    if again and attempts:
        pks = _recorded_attempt_ids(attempts)
        if pks is not None:
            for attempt, pk in zip(attempts, pks, strict=True):
                attempt.pk = pk
            return Recorded(recovered=succeeded, more_due=_has_due_after_commit(webhook_id))
    statements: list[tuple[str, Any, bool]] = []  # (sql, params, many)
    if attempts:
        sql, values = _attempt_rows(attempts)
        statements.append((sql, values, False))
    if updates:
        statements.append(_delivery_updates(updates))
    if unsent:
        statements.append((_release_sql(unsent), unsent, False))
    webhook_params = {
        "webhook": webhook_id,
        "now": db_time(now),
        "second_ago": db_time(now - datetime.timedelta(seconds=1)),
    }
    first_webhook_statement = len(statements)
    if succeeded:
        statements.append((_RECOVERED_SQL, webhook_params, False))
    if attempts:
        statements.append((_SENT_SQL, webhook_params, False))
    results, more_due = _commit_then_look(statements, webhook_params)
    # Rows come back in the order of the VALUES list (PostgreSQL and SQLite alike).
    for attempt, (pk,) in zip(attempts, results[0] if attempts else [], strict=True):
        attempt.pk = pk
    recovered = bool(succeeded and results[first_webhook_statement])
    return Recorded(recovered=recovered, more_due=bool(more_due))


# --- Just before a request leaves, and after a worker stopped mid-send ----------------------------------


def _rate_spacing(per_second: float) -> float:
    # A little more than 1/R apart, so that the network's jitter cannot squeeze R + 1 arrivals into a second.
    return 1.04 / per_second


_MARK_SQL = f"UPDATE {DELIVERY} SET sending_since = %(now)s WHERE id = %(delivery)s"  # noqa: S608
_GATE_OPEN_NOW = (
    "(rate_next_at IS NULL OR rate_next_at <= %(now)s) AND (slowed_until IS NULL OR slowed_until <= %(now)s)"
)
_GATE_SQL = f"UPDATE {WEBHOOK} SET rate_next_at = %(next)s WHERE id = %(webhook)s AND {_GATE_OPEN_NOW} RETURNING id"  # noqa: S608
# On PostgreSQL, one statement in autocommit that commits without waiting for the disk: the setting is local
# to the statement's own transaction, and read when it commits.
_ASYNC = "async_commit AS (SELECT set_config('synchronous_commit', 'off', true))"
_PG_MARK_SQL = f"WITH {_ASYNC} {_MARK_SQL} AND EXISTS (SELECT 1 FROM async_commit)"  # noqa: S608
_PG_GATED_MARK_SQL = (
    f"WITH {_ASYNC}, gate AS (UPDATE {WEBHOOK} SET rate_next_at = %(next)s WHERE id = %(webhook)s"  # noqa: S608
    f" AND {_GATE_OPEN_NOW} AND EXISTS (SELECT 1 FROM async_commit) RETURNING id)"
    f" {_MARK_SQL} AND EXISTS (SELECT 1 FROM gate) RETURNING id"
)


def mark_sending(delivery_id: int, webhook_id: int, now: datetime.datetime, per_second: float | None) -> bool:
    """Write down that a request of this delivery leaves now; False (nothing written) when its webhook's gate
    is closed and nothing may be sent yet.

    The mark is what makes every request a receiver may have got part of the
    history: `record` clears it with the attempt, and a mark still there when
    the lease has run out means the worker stopped mid-send
    (`record_interrupted`). It commits before the request leaves; on
    PostgreSQL without waiting for the disk (a database crash could lose it;
    a killed worker cannot). With a rate limit the same statement takes the
    webhook's next slot in time (spaced 1/rate apart, across every worker),
    only if it has come and no 429 slow-down is in force.
    """
    params = {"delivery": delivery_id, "webhook": webhook_id, "now": db_time(now)}
    if per_second:
        params["next"] = db_time(now + datetime.timedelta(seconds=_rate_spacing(per_second)))
    if _can_pipeline():
        with _hot_cursor() as cursor:
            cursor.execute(_PG_GATED_MARK_SQL if per_second else _PG_MARK_SQL, params)
            return not per_second or cursor.fetchone() is not None
    with transaction.atomic(), connection.cursor() as django_cursor:
        if per_second:
            django_cursor.execute(_GATE_SQL, params)
            if django_cursor.fetchone() is None:
                return False
        django_cursor.execute(_MARK_SQL, params)
        return True


def gate_of(webhook_id: int) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """The webhook's rate gate and 429 slow-down as they stand (after `mark_sending` found it closed)."""
    row = Webhook.objects.filter(pk=webhook_id).values_list("rate_next_at", "slowed_until").first()
    return row if row is not None else (None, None)


def take_wake_up(webhook_id: int, at: datetime.datetime, now: datetime.datetime) -> bool:
    """Whether the caller is the one to queue the drain that starts the webhook sending again at `at`.

    Every task that meets a closed gate would otherwise queue its own: one
    wake-up per gate is enough (it drains whatever is due).
    """
    return bool(
        Webhook.objects.filter(pk=webhook_id)
        .filter(models.Q(wake_up_at__isnull=True) | models.Q(wake_up_at__lt=now) | models.Q(wake_up_at__gt=at))
        .update(wake_up_at=at)
    )


INTERRUPTED_DETAIL = "the worker stopped while sending it: the receiver may or may not have got it"


def record_interrupted(now: datetime.datetime, delivery_ids: list[int] | None = None) -> dict[int, tuple[int, int]]:
    """Record the attempts whose worker stopped mid-send, as attempts whose outcome is unknown.

    Those of `delivery_ids` (just leased by the caller, so nobody else is
    sending them), or else every delivery still marked whose lease has run
    out. The attempt counts in the history and in the delivery's numbering,
    not in its retry schedule, and says nothing of the receiver's health; the
    delivery stays as due as it was, so it is sent again, as a new attempt.
    Returns each delivery's new (attempt_count, probes).
    """
    marked = Delivery.objects.filter(sending_since__isnull=False)
    # A mark is only ever written under a lease, and cleared with it: those left are under leases run out,
    # which the (webhook, leased_until) index of leases finds (the mark itself is not indexed, so that
    # writing it touches no index).
    marked = marked.filter(pk__in=delivery_ids) if delivery_ids is not None else marked.filter(leased_until__lt=now)
    done: dict[int, tuple[int, int]] = {}
    with transaction.atomic():
        rows = list(
            marked.select_for_update(of=("self",))
            .select_related("webhook")
            .values_list("pk", "attempt_count", "probes", "sending_since", "webhook_id", "webhook__url")[:500]
        )
        attempts = []
        for pk, attempt_count, probes, since, webhook_id, url in rows:
            attempts.append(
                Attempt(
                    delivery_id=pk,
                    webhook_id=webhook_id,
                    number=attempt_count + 1,
                    trigger=Attempt.Trigger.SCHEDULED,
                    started_at=since or now,
                    duration_ms=0,
                    url=url,
                    error=Attempt.OUTCOME_UNKNOWN,
                    error_detail=INTERRUPTED_DETAIL,
                )
            )
            Delivery.objects.filter(pk=pk).update(
                attempt_count=attempt_count + 1,
                probes=probes + 1,
                sending_since=None,
                last_attempt_at=since,
                last_status_code=None,
                last_error=Attempt.OUTCOME_UNKNOWN,
                last_duration_ms=0,
            )
            done[pk] = (attempt_count + 1, probes + 1)
        Attempt.objects.bulk_create(attempts)
    return done
