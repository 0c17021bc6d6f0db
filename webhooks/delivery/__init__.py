"""The delivery engine: from a change to a receiver's answer, at least once, in order of what is due.

The path of one event, top-down (each step names the module that owns it)::

    a record write (environments/records.py: create_record, update_record, delete_record)
      │  writes the record and, in the same transaction, its Event (environments/events.py: emit_event)
      ▼
    fanout.fan_out(event)                 the event's listener, still inside that transaction:
      │                                   one Delivery per webhook that opted into the event type (or the
      │                                   event joins a batch not yet sent), the event numbered in each
      │                                   webhook's sequence (ledger.next_numbers, see below); when a sending
      │                                   slot is free, the delivery is leased and its body rendered (bodies)
      │                                   right here
      ▼  on commit
    queueing.deliver(delivery_id)         a Celery task by name; if the broker loses it, the database
      │                                   still says the delivery is due (see the sweeper)
      ▼  a worker runs the task (webhooks/tasks.py)
    sending.deliver(delivery_id)
      │  ledger.load_fan_out_leased / ledger.claim
      │                                   a worker leases deliveries: per-webhook lock; only the head of
      │                                   each line (ordering: per record, or strict); at most the
      │                                   webhook's max_in_flight leases (one for strict) and
      │                                   WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT per environment; none
      │                                   while its gate is closed (rate limit, a 429's Retry-After)
      │  bodies.render, signing_keys.keys_at, signing.signature_header
      │                                   the body (frozen once sent), signed with every live key
      │  ledger.mark_sending              written before the request leaves (and the rate gate taken):
      │                                   a worker that stops mid-send leaves an attempt of unknown outcome
      │  outbound.post (on inflight's I/O threads in a worker)
      │                                   POST under one deadline, to an address that passed the checks;
      │                                   an answer slower than the patience is parked, and recorded by
      │                                   the process's recorder thread when it comes
      │  authorization.post               for a receiver that demands an OAuth 2.0 token: the token (shared
      │                                   by every worker, fetched once per expiry) inside the same deadline
      │  retry_policy.after_attempt       the delivery's new state: a DeliveryUpdate (succeeded, retrying
      │                                   at the schedule's next step, paced by a 429, or failed)
      │  ledger.record                    the attempts and DeliveryUpdates in one transaction; the lease given
      │                                   back; was the webhook failing and is now answering? is more due?
      │  retry_policy.note_failure        failing since…; disabled on 410 or after days of failure
      │  queueing.deliver / drain         retries due within a minute; the backlog of a recovered webhook
      ▼
    sending.drain(webhook_id)             while more is due and a slot is free: batches, oldest first
      ⋮
    sweeper.run(now)                      every WEBHOOK_SWEEP_SECONDS (the periodic task in webhooks/tasks.py):
                                          attempts whose worker stopped mid-send are recorded (outcome
                                          unknown), due deliveries whose task was lost are queued again, and
                                          failing webhooks are probed (sweeper.probe) so their return is seen
                                          in seconds

Numbered deliveries
-------------------
Each webhook numbers the events it sends, contiguously from 1; every event a body carries has its number as
`"sequence"` (a batch, each event's own), on every path that renders one (`bodies.payload`). The number is
stored on `DeliveryEvent.sequence` and given at fan-out, in the writing transaction, from the webhook's row
of `WebhookSequence` (`UPDATE … SET last = last + 1 RETURNING last`, in `ledger.next_numbers`). What it rests
on: that row stays locked until the writer commits, so a writer that rolls back gives its number back (no
gap) and the next writer of the same webhook waits for the commit (numbers in commit order, and a reader
never sees 43 before 42). Its cost: writers that feed one webhook serialise from their fan-out to their
commit. The counter is a table of its own, not a column of Webhook, because the workers write Webhook rows
all the time (health, rate gate) and must not wait on writers. One event's counters are locked in webhook
id order. Test sends and heartbeats have no number; re-sends keep theirs (they send the same delivery).
The client a webhook serves reads its events by number and its status (`webhooks/numbering.py`,
`dataapi/webhook_events.py`); heartbeats (`webhooks/heartbeats.py`) carry the last number sent.

Seams: what the rest of the product may call
--------------------------------------------
The product's modules use nothing else of it (webhooks/tests/test_engine_seams.py holds them to this
list; tests and benchmarks look inside too):

- `fanout.fan_out` (the event listener), `fanout.new_message_id` (a delivery written by hand)
- `queueing.drain`, `queueing.manual_send`, `queueing.queue`, and the task names
  `queueing.DELIVER`, `queueing.DRAIN`, `queueing.PROBE`, `queueing.BULK_RESEND`, `queueing.MANUAL_SEND`
- `sending.deliver`, `sending.drain` (the tasks), `sending.send_now` (a test, re-send or probe, whatever the
  schedule), `sending.attempt_delivery` (one attempt, with its options); `ledger.ClaimBusy`, which
  `attempt_delivery(busy_raises=True)` raises, and `ledger.lease_seconds` (how long a lease lasts)
- `retry_policy.make_waiting_due` ("retry now")
- `sweeper.run`, `sweeper.probe` (the periodic sweep and the probe task)
- `bodies.preview`, `bodies.body_of` (what a delivery would send, or sends), `bodies.numbered_payload` (one
  event with its number, as a webhook's bodies carry it), `bodies.HEARTBEAT_EVENT_TYPE`, `bodies.shaped_data`
  and `bodies.Shape` (the step that shapes an event's data for a webhook: the event catalog's JSON Schemas
  go through it, so a schema describes what the bodies carry)
- `signing.new_signing_secret`, `signing.new_key_pair`, `signing.raw_public_key` (the JWKS page),
  `signing.SELF_TEST_MARKER`
- `outbound.check_url`, `outbound.InvalidDestination` (where a webhook may point), `outbound.ERROR_CLASSES`
- `inflight.enable`, `inflight.finish` (the worker's start and shutdown: park slow requests, then let them end)

What only the engine calls
--------------------------
The ledger's claims, reads, marks, gates and `record` (the only raw SQL of the product), `DeliveryUpdate`,
`Target` and `Claimed`; `inflight`'s pools; `sending.probe` and `Sent`; `queueing.deliver`;
`bodies.render`, `bodies.payload`; `ledger.next_numbers`; `retry_policy.after_attempt`, `retry_delay`,
`note_failure`, `probe_interval`, `slow_down`; `signing_keys.keys_at`; `signing.signature_header` and `tampered`;
`outbound.post` and its address checks; `authorization`'s settings, tokens and post; `sending.send_claimed`;
`sweeper.sweep` and `webhooks_to_probe`; every name starting with an underscore.

What the engine uses from outside: the models (`webhooks.models`, `environments.models`), the webhook's
options (`webhooks.options.OptionValues`), the example records of a preview (`webhooks.examples`), the
credentials a webhook signs with (`credentials.models`; their secrets decrypt as they are read), and the
webhook's lifecycle (`webhooks.lifecycle`) to disable a failing webhook, and `portal.log_context` for the
correlation fields of its log lines (the delivery being sent). It imports
no feature (bulk re-sends, sends by hand, rotation, erasure, health…): those call the engine, and the
periodic task runs their sweeps after the engine's own.
"""
