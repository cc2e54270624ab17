"""The versioned schema. Each migration is a list of DDL statements with
``{s}`` for the schema prefix (``wf.`` on Postgres, nothing on SQLite) and a
few per-dialect type placeholders (``Dialect.ddl_types``). Append
migrations; never edit a released one.

Times are integer epoch milliseconds on both dialects: one format, cheap to
compare and index, no time-zone drift between drivers.

The wake-up keys that the NOTIFY triggers send are also made here
(``wake_key``), beside the triggers, in the same format."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dialects import Dialect

# marks a statement run only where the dialect listens (the NOTIFY triggers)
PG_ONLY = "--postgresql\n"

# Migration 4's advisory locks use the two-key form (a key space of their
# own): class 30566 (0x7766, "wf"), then one lock per bucket of wake-up keys,
# hashtext(key) & 63. 64 buckets: a statement ending many workflows holds at
# most 64 of them.

MIGRATIONS: list[list[str]] = [
    # 1: the whole first schema
    [
        """CREATE TABLE {s}workflows (
            workflow_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            name TEXT NOT NULL,
            inputs TEXT NOT NULL,
            output TEXT,
            error TEXT,
            executor_id TEXT,
            queue TEXT,
            priority INTEGER NOT NULL DEFAULT 0,
            dedup_id TEXT,
            parent_workflow_id TEXT,
            recovery_attempts INTEGER NOT NULL DEFAULT 0,
            max_recovery_attempts INTEGER NOT NULL DEFAULT 50,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            started_at BIGINT,
            deadline BIGINT,
            timeout_ms BIGINT,
            not_before BIGINT{seq_column}
        )""",
        "CREATE INDEX wf_workflows_created ON {s}workflows (created_at, workflow_id)",
        "CREATE INDEX wf_workflows_status_created ON {s}workflows (status, created_at, workflow_id)",
        "CREATE INDEX wf_workflows_name_created ON {s}workflows (name, created_at)",
        "CREATE INDEX wf_workflows_parent ON {s}workflows (parent_workflow_id) WHERE parent_workflow_id IS NOT NULL",
        # recovery looks only at in-flight rows: keep that index small
        "CREATE INDEX wf_workflows_inflight ON {s}workflows (executor_id) WHERE status = 'PENDING'",
        "CREATE INDEX wf_workflows_deadline ON {s}workflows (deadline) WHERE deadline IS NOT NULL AND status IN ('PENDING', 'ENQUEUED')",
        # dequeue order; partial so it stays small however many rows have ended
        "CREATE INDEX wf_workflows_queue ON {s}workflows (queue, status, priority, created_at{seq_index}) WHERE status IN ('ENQUEUED', 'PENDING') AND queue IS NOT NULL",
        "CREATE INDEX wf_workflows_queue_started ON {s}workflows (queue, started_at) WHERE queue IS NOT NULL",
        "CREATE UNIQUE INDEX wf_workflows_dedup ON {s}workflows (queue, dedup_id) WHERE dedup_id IS NOT NULL AND status IN ('ENQUEUED', 'PENDING')",
        """CREATE TABLE {s}steps (
            workflow_id TEXT NOT NULL REFERENCES {s}workflows (workflow_id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            output TEXT,
            error TEXT,
            child_workflow_id TEXT,
            started_at BIGINT,
            ended_at BIGINT,
            PRIMARY KEY (workflow_id, position)
        )""",
        """CREATE TABLE {s}messages (
            message_id {serial_pk},
            destination_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            message TEXT NOT NULL,
            idempotency_key TEXT,
            created_at BIGINT NOT NULL
        )""",
        "CREATE INDEX wf_messages_dest ON {s}messages (destination_id, topic, message_id)",
        "CREATE UNIQUE INDEX wf_messages_idem ON {s}messages (destination_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
        # delivered idempotency keys stay here so a resend after delivery is still a no-op
        """CREATE TABLE {s}message_keys (
            destination_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            PRIMARY KEY (destination_id, idempotency_key)
        )""",
        """CREATE TABLE {s}events (
            workflow_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (workflow_id, key)
        )""",
        """CREATE TABLE {s}logs (
            log_id {serial_pk},
            workflow_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            time BIGINT NOT NULL,
            level TEXT NOT NULL,
            step TEXT,
            message TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX wf_logs_dedup ON {s}logs (workflow_id, position, seq)",
        "CREATE INDEX wf_logs_time ON {s}logs (time)",
        """CREATE TABLE {s}executors (
            executor_id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at BIGINT NOT NULL,
            heartbeat_at BIGINT NOT NULL
        )""",
        """CREATE TABLE {s}queues (
            name TEXT PRIMARY KEY,
            concurrency INTEGER,
            worker_concurrency INTEGER,
            rate_limit_n INTEGER,
            rate_limit_seconds DOUBLE PRECISION,
            priority INTEGER NOT NULL DEFAULT 0,
            updated_at BIGINT NOT NULL
        )""",
        # Postgres only (PG_ONLY prefix): NOTIFY waiters in every process when
        # a workflow ends or is enqueued, a message arrives, an event is set.
        # Payloads are md5 digests, so IDs of any length fit. The format is
        # wake_key's below: change both together (in a new migration).
        PG_ONLY
        + """CREATE FUNCTION {s}notify_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
                IF NEW.status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'RETRIES_EXCEEDED') THEN
                    PERFORM pg_notify('wf', 'w:' || md5(NEW.workflow_id));
                    IF NEW.status = 'CANCELLED' THEN
                        PERFORM pg_notify('wf', 'c:' || md5(NEW.workflow_id));
                    END IF;
                ELSIF NEW.status = 'ENQUEUED' AND NEW.queue IS NOT NULL THEN
                    PERFORM pg_notify('wf', 'q:' || md5(NEW.queue));
                END IF;
            END IF;
            RETURN NULL;
        END $$""",
        PG_ONLY
        + """CREATE TRIGGER wf_workflows_notify AFTER INSERT OR UPDATE OF status ON {s}workflows
        FOR EACH ROW EXECUTE FUNCTION {s}notify_workflow()""",
        PG_ONLY
        + """CREATE FUNCTION {s}notify_message() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('wf', 'm:' || md5(NEW.destination_id || chr(31) || NEW.topic));
            RETURN NULL;
        END $$""",
        PG_ONLY
        + """CREATE TRIGGER wf_messages_notify AFTER INSERT ON {s}messages
        FOR EACH ROW EXECUTE FUNCTION {s}notify_message()""",
        PG_ONLY
        + """CREATE FUNCTION {s}notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('wf', 'e:' || md5(NEW.workflow_id || chr(31) || NEW.key));
            RETURN NULL;
        END $$""",
        PG_ONLY
        + """CREATE TRIGGER wf_events_notify AFTER INSERT OR UPDATE ON {s}events
        FOR EACH ROW EXECUTE FUNCTION {s}notify_event()""",
    ],
    # 2: queue slots and starts that outlive a status change
    [
        # 1 from a dequeue until the run has stopped: a cancelled (or resumed,
        # back on its queue) workflow whose run is still going keeps its slot
        # of the queue's concurrency, released when the run ends
        "ALTER TABLE {s}workflows ADD COLUMN slot_held INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX wf_workflows_slots ON {s}workflows (queue, executor_id) WHERE slot_held = 1 AND status IN ('CANCELLED', 'ENQUEUED')",
        # one row per dequeue of a rate-limited queue: a run that was killed
        # and re-queued still counts in the window it started in
        """CREATE TABLE {s}queue_starts (
            queue TEXT NOT NULL,
            started_at BIGINT NOT NULL
        )""",
        "CREATE INDEX wf_queue_starts ON {s}queue_starts (queue, started_at)",
    ],
    # 3: what operators read: why a workflow was cancelled, what a restart
    # copied, each call's attempts and detail, what each executor serves,
    # and the schedules workers declared
    [
        "ALTER TABLE {s}workflows ADD COLUMN cancel_reason TEXT",
        "ALTER TABLE {s}workflows ADD COLUMN forked_from TEXT",
        "ALTER TABLE {s}workflows ADD COLUMN forked_from_step INTEGER",
        "ALTER TABLE {s}workflows ADD COLUMN app_version TEXT",
        "ALTER TABLE {s}steps ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE {s}steps ADD COLUMN detail TEXT",
        # a JSON array of queue names; NULL serves every queue
        "ALTER TABLE {s}executors ADD COLUMN queues TEXT",
        """CREATE TABLE {s}schedules (
            name TEXT PRIMARY KEY,
            workflow_name TEXT NOT NULL,
            cron TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT 'code',
            paused INTEGER NOT NULL DEFAULT 0,
            last_tick BIGINT,
            updated_at BIGINT NOT NULL
        )""",
    ],
    # 4: NOTIFY only when someone in another process may wait for it (a
    # notifying commit holds a cluster-wide lock until it is flushed, so
    # notifying finishes never share an fsync). Waiters register interest in
    # wake_interest (unlogged: a registry of live sessions, not data); queue
    # work and freed slots go to the executors that serve the queue (their
    # heartbeat rows). Cancellations always notify (rare, and a running
    # workflow watches for them without registering). See wake_wanted for
    # why a registration racing a finish cannot lose its wake-up.
    [
        # one row per (key, LISTEN session): pid is the listener's backend,
        # so rows of dead processes are recognisable (and swept)
        # a run's every statement names its own row by executor and ID; with
        # the ID in the key that is a direct hit however many rows the
        # executor has in flight and whatever the planner's statistics say
        # (an executor that just adopted thousands is unknown to them)
        "DROP INDEX {s}wf_workflows_inflight",
        "CREATE INDEX wf_workflows_inflight ON {s}workflows (executor_id, workflow_id) WHERE status = 'PENDING'",
        PG_ONLY
        + """CREATE UNLOGGED TABLE {s}wake_interest (
            key TEXT NOT NULL,
            pid INTEGER NOT NULL,
            PRIMARY KEY (key, pid)
        )""",
        # Should a trigger notify `k`? In READ COMMITTED it takes bucket(k)'s
        # advisory lock SHARED (held to its commit), then looks for interest
        # with a fresh snapshot. wake_register takes the same lock EXCLUSIVE
        # (try-lock, held to its commit) around the insert. So either the
        # notifier locked first, and the registration commits after the
        # notifier did, and the waiter's re-check after the registration sees
        # the change; or the registration locked first, and the notifier's
        # look (after its lock, a new snapshot) sees the row and notifies the
        # session, which LISTENed before registering. Other isolation levels
        # (user transactions) see an old snapshot: they always notify.
        PG_ONLY
        + """CREATE OR REPLACE FUNCTION {s}wake_wanted(k TEXT) RETURNS boolean
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('transaction_isolation') <> 'read committed' THEN
                RETURN true;
            END IF;
            PERFORM pg_advisory_xact_lock_shared(30566, hashtext(k) & 63);
            RETURN EXISTS (SELECT 1 FROM {s}wake_interest WHERE key = k);
        END $$""",
        # run alone in its own (autocommit) statement by the listener session:
        # one lock at a time, and a try-lock, so it never waits while holding
        # a lock (no deadlock) and never queues a notifier behind it
        PG_ONLY
        + """CREATE OR REPLACE FUNCTION {s}wake_register(k TEXT) RETURNS boolean
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT pg_try_advisory_xact_lock(30566, hashtext(k) & 63) THEN
                RETURN false;
            END IF;
            INSERT INTO {s}wake_interest (key, pid) VALUES (k, pg_backend_pid())
                ON CONFLICT DO NOTHING;
            RETURN true;
        END $$""",
        # is queue q served by a live-looking executor (other than `other`)?
        # Its heartbeat row lists the queues it serves (JSON; NULL: every
        # queue). A substring test: a false answer costs latency only
        # (dequeuers poll), and it cannot fail the writing transaction.
        PG_ONLY
        + """CREATE OR REPLACE FUNCTION {s}queue_served(q TEXT, other TEXT) RETURNS boolean
        LANGUAGE sql STABLE AS $$
            SELECT EXISTS (SELECT 1 FROM {s}executors e
                WHERE (other IS NULL OR e.executor_id <> other)
                    AND (e.queues IS NULL OR strpos(e.queues, '"' || q || '"') > 0))
        $$""",
        PG_ONLY
        + """CREATE OR REPLACE FUNCTION {s}notify_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT;
        BEGIN
            IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
                IF NEW.status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'RETRIES_EXCEEDED') THEN
                    k := 'w:' || md5(NEW.workflow_id);
                    -- a waiter, or (a slot of a queue with a global limit was
                    -- freed) another executor serving that queue
                    IF {s}wake_wanted(k) OR (NEW.queue IS NOT NULL
                        AND EXISTS (SELECT 1 FROM {s}queues
                            WHERE name = NEW.queue AND concurrency IS NOT NULL)
                        AND {s}queue_served(NEW.queue, NEW.executor_id))
                    THEN
                        PERFORM pg_notify('wf', k);
                    END IF;
                    IF NEW.status = 'CANCELLED' THEN
                        PERFORM pg_notify('wf', 'c:' || md5(NEW.workflow_id));
                    END IF;
                ELSIF NEW.status = 'ENQUEUED' AND NEW.queue IS NOT NULL THEN
                    IF {s}queue_served(NEW.queue, NULL) THEN
                        PERFORM pg_notify('wf', 'q:' || md5(NEW.queue));
                    END IF;
                END IF;
            END IF;
            RETURN NULL;
        END $$""",
        PG_ONLY
        + """CREATE OR REPLACE FUNCTION {s}notify_message() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT := 'm:' || md5(NEW.destination_id || chr(31) || NEW.topic);
        BEGIN
            IF {s}wake_wanted(k) THEN
                PERFORM pg_notify('wf', k);
            END IF;
            RETURN NULL;
        END $$""",
        PG_ONLY
        + """CREATE OR REPLACE FUNCTION {s}notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT := 'e:' || md5(NEW.workflow_id || chr(31) || NEW.key);
        BEGIN
            IF {s}wake_wanted(k) THEN
                PERFORM pg_notify('wf', k);
            END IF;
            RETURN NULL;
        END $$""",
    ],
    # 5: which workflows each executor has registered (a JSON array of
    # recorded names; NULL: not said, e.g. an executor of an older wf), so a
    # tool can tell that work enqueued by name (wf.Client) has no live taker
    [
        "ALTER TABLE {s}executors ADD COLUMN workflows TEXT",
    ],
    # 6: queues per tenant and debouncing: a workflow's partition of its queue
    # (limits per partition, queues.partition_*; starts counted per partition
    # in queue_starts), and the debounce key that collapses a burst of
    # enqueues into one ENQUEUED workflow (the unique index: one per key and
    # queue while it waits) with the latest time its wait may reach. Both
    # indexes are partial on columns NULL for other workflows: they cost the
    # hot path nothing.
    [
        "ALTER TABLE {s}workflows ADD COLUMN partition_key TEXT",
        "ALTER TABLE {s}workflows ADD COLUMN debounce_key TEXT",
        "ALTER TABLE {s}workflows ADD COLUMN debounce_until BIGINT",
        "CREATE INDEX wf_workflows_partition ON {s}workflows (queue, partition_key, status) WHERE partition_key IS NOT NULL",
        "CREATE UNIQUE INDEX wf_workflows_debounce ON {s}workflows (queue, debounce_key) WHERE debounce_key IS NOT NULL AND status = 'ENQUEUED'",
        "ALTER TABLE {s}queues ADD COLUMN partition_concurrency INTEGER",
        "ALTER TABLE {s}queues ADD COLUMN partition_rate_limit_n INTEGER",
        "ALTER TABLE {s}queues ADD COLUMN partition_rate_limit_seconds DOUBLE PRECISION",
        "ALTER TABLE {s}queue_starts ADD COLUMN partition_key TEXT",
    ],
    # 7: streams (wf.write_stream / close_stream / read_stream): one row per
    # value, at the position of the recorded call that wrote it (written in
    # that call's transaction: exactly once), the close a row of its own.
    # The rows go with their workflow (ON DELETE CASCADE: wf.delete/gc).
    # Readers in other processes are woken like get_event's, only when one
    # registered interest (migration 4's wake_wanted).
    [
        """CREATE TABLE {s}streams (
            workflow_id TEXT NOT NULL REFERENCES {s}workflows (workflow_id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            position INTEGER NOT NULL,
            value TEXT,
            closed INTEGER NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workflow_id, key, position)
        )""",
        PG_ONLY
        + """CREATE FUNCTION {s}notify_stream() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            k TEXT := 's:' || md5(NEW.workflow_id || chr(31) || NEW.key);
        BEGIN
            IF {s}wake_wanted(k) THEN
                PERFORM pg_notify('wf', k);
            END IF;
            RETURN NULL;
        END $$""",
        PG_ONLY
        + """CREATE TRIGGER wf_streams_notify AFTER INSERT ON {s}streams
        FOR EACH ROW EXECUTE FUNCTION {s}notify_stream()""",
    ],
    # 8: schedules stored at run time (wf.create_schedule; source 'db'): the
    # arguments each tick passes after (scheduled_at, started_at), as the
    # workflow's inputs are stored ({"args": [...], "kwargs": {...}}; NULL for
    # a code-declared schedule), the queue its ticks go on (NULL: started by
    # the worker whose tick it is), and when it was created. Workers' cron
    # loops poll the table; `paused` (migration 3) holds for both sources.
    [
        "ALTER TABLE {s}schedules ADD COLUMN inputs TEXT",
        "ALTER TABLE {s}schedules ADD COLUMN queue TEXT",
        "ALTER TABLE {s}schedules ADD COLUMN created_at BIGINT",
    ],
    # 9: the waiting workflows of each partition in dequeue order, so a
    # partitioned dequeue that reads past the queue's head (queries.py,
    # _PARTITION_HEADS) takes each partition's first ones by index instead
    # of sorting and ranking every waiting row. Partial on partition_key IS
    # NOT NULL: workflows without a partition never enter it (their enqueues
    # and finishes cost nothing more); a partitioned one leaves it when it
    # is dequeued.
    [
        "CREATE INDEX wf_workflows_partition_waiting ON {s}workflows (queue, partition_key, priority, created_at{seq_index}) WHERE status = 'ENQUEUED' AND partition_key IS NOT NULL",
    ],
]

# Kept in the application database (the system database by default): written
# inside the user's transaction so its effects and its recorded output commit
# together.
APP_MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE {s}transaction_outputs (
            workflow_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            output TEXT,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workflow_id, position)
        )""",
    ],
]

LATEST_VERSION = len(MIGRATIONS)


def wake_key(kind: str, *parts: str) -> str:
    """The key that wakes waiters for ``parts``: ``kind:md5(parts joined by
    chr(31))``, exactly what the triggers above send (``w:``/``c:`` a workflow
    ended/cancelled, ``q:`` a queue has work, ``m:`` a message for
    (destination, topic), ``e:`` an event (workflow, key) was set, ``s:`` a
    stream (workflow, key) was written)."""
    return kind + ":" + hashlib.md5("\x1f".join(parts).encode("utf-8")).hexdigest()


def statements(migration: list[str], dialect: Dialect) -> list[str]:
    """The migration's statements for ``dialect``, rendered."""
    out = []
    for stmt in migration:
        if stmt.startswith(PG_ONLY):
            if not dialect.listens:
                continue
            stmt = stmt[len(PG_ONLY) :]
        out.append(render(stmt, dialect))
    return out


def render(stmt: str, dialect: Dialect) -> str:
    values = {"s": dialect.schema_prefix, **dialect.ddl_types}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], stmt)
