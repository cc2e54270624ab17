"""Every SQL statement wf runs, by name. ``{s}`` is the schema prefix;
``{for_share}`` locks the workflow row on Postgres so an ownership check and
the write it guards cannot interleave with a recovery claim (SQLite has one
writer at a time, so it needs no lock). Parameters are always bound, never
formatted in."""

from __future__ import annotations

import re

DIALECT_FRAGMENTS = {
    "postgresql": {
        "for_share": "FOR SHARE",
        "skip_locked": "FOR UPDATE SKIP LOCKED",
        "seq": "seq",
        "queue_index_terms": "",
    },
    # SQLite uses a partial index only when the query repeats its WHERE terms
    # (on Postgres they would cost the index's ordering)
    "sqlite": {
        "for_share": "",
        "skip_locked": "",
        "seq": "rowid",
        "queue_index_terms": "AND status IN ('ENQUEUED', 'PENDING') AND queue IS NOT NULL",
    },
}

WORKFLOW_COLUMNS = (
    "workflow_id, status, name, inputs, output, error, executor_id, queue, priority, dedup_id, "
    "parent_workflow_id, recovery_attempts, max_recovery_attempts, created_at, updated_at, "
    "started_at, deadline, timeout_ms, not_before"
)

# Columns `wf list` shows: the big output/error/inputs texts are not read there.
WORKFLOW_LIST_COLUMNS = WORKFLOW_COLUMNS

Q: dict[str, str] = {
    # -- schema ---------------------------------------------------------------
    "create_version_table": "CREATE TABLE IF NOT EXISTS {s}{version_table} (version INTEGER NOT NULL)",
    "get_version": "SELECT version FROM {s}{version_table}",
    "insert_version": "INSERT INTO {s}{version_table} (version) VALUES (:v)",
    "set_version": "UPDATE {s}{version_table} SET version = :v",
    # -- workflows --------------------------------------------------------------
    "insert_workflow": """
        INSERT INTO {s}workflows (workflow_id, status, name, inputs, executor_id, queue, priority,
            dedup_id, parent_workflow_id, recovery_attempts, max_recovery_attempts, created_at,
            updated_at, started_at, deadline, timeout_ms, not_before)
        VALUES (:workflow_id, :status, :name, :inputs, :executor_id, :queue, :priority, :dedup_id,
            :parent_workflow_id, 0, :max_recovery_attempts, :now, :now, :started_at, :deadline,
            :timeout_ms, :not_before)
        ON CONFLICT (workflow_id) DO NOTHING""",
    "get_workflow": "SELECT "
    + WORKFLOW_COLUMNS
    + " FROM {s}workflows WHERE workflow_id = :workflow_id",
    "get_outcome": "SELECT status, output, error FROM {s}workflows WHERE workflow_id = :workflow_id",
    "finish_workflow": """
        UPDATE {s}workflows SET status = :status, output = :output, error = :error, updated_at = :now
        WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id""",
    "mark_retries_exceeded": """
        UPDATE {s}workflows SET status = 'RETRIES_EXCEEDED', updated_at = :now
        WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id""",
    "inflight_executors": "SELECT DISTINCT executor_id FROM {s}workflows WHERE status = 'PENDING'",
    "inflight_of_executor": """
        SELECT workflow_id, name FROM {s}workflows
        WHERE status = 'PENDING' AND executor_id = :executor_id
        ORDER BY created_at""",
    "inflight_names": """
        SELECT DISTINCT name FROM {s}workflows WHERE status = 'PENDING' AND executor_id = :executor_id""",
    # back on its queue, so the queue's limits still hold for it
    "requeue_all": """
        UPDATE {s}workflows SET status = 'ENQUEUED', executor_id = NULL, started_at = NULL,
            recovery_attempts = recovery_attempts + 1, updated_at = :now
        WHERE status = 'PENDING' AND executor_id = :old_executor_id AND queue IS NOT NULL
            AND updated_at < :before
        RETURNING workflow_id""",
    # one statement adopts all of a dead executor's workflows whose code we have
    "claim_all": """
        UPDATE {s}workflows
        SET executor_id = :executor_id, recovery_attempts = recovery_attempts + 1, updated_at = :now
        WHERE status = 'PENDING' AND executor_id = :old_executor_id AND name IN :names
            AND (queue IS NULL OR :include_queued = 1) AND updated_at < :before
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline""",
    # this executor's own in-flight rows untouched since :before; the caller
    # drops those it is running and claims the rest by ID (a claim whose
    # answer was lost leaves rows here that nothing runs)
    "own_stale": """
        SELECT workflow_id FROM {s}workflows
        WHERE status = 'PENDING' AND executor_id = :executor_id AND updated_at < :before""",
    "claim_own": """
        UPDATE {s}workflows
        SET recovery_attempts = recovery_attempts + 1, updated_at = :now
        WHERE status = 'PENDING' AND executor_id = :executor_id AND workflow_id IN :ids
            AND name IN :names AND updated_at < :before
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline""",
    "cancel_workflow": """
        UPDATE {s}workflows SET status = 'CANCELLED', updated_at = :now
        WHERE workflow_id = :workflow_id AND status IN ('PENDING', 'ENQUEUED')""",
    "children_of": "SELECT workflow_id FROM {s}workflows WHERE parent_workflow_id = :workflow_id",
    "resume_workflow": """
        UPDATE {s}workflows SET status = :status, executor_id = :executor_id, recovery_attempts = 0,
            error = NULL, output = NULL, deadline = NULL, started_at = :started_at, updated_at = :now,
            queue = :queue
        WHERE workflow_id = :workflow_id AND status <> 'SUCCESS'""",
    "expired_deadlines": """
        SELECT workflow_id FROM {s}workflows
        WHERE deadline IS NOT NULL AND deadline < :now AND status IN ('PENDING', 'ENQUEUED')""",
    # -- steps --------------------------------------------------------------------
    # One round trip: the write happens only while this executor still owns the
    # running workflow, which folds the cancellation and ownership checks in.
    "record_step": """
        INSERT INTO {s}steps (workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at)
        SELECT CAST(:workflow_id AS TEXT), CAST(:position AS INTEGER), CAST(:name AS TEXT),
            CAST(:kind AS TEXT), CAST(:output AS TEXT), CAST(:error AS TEXT),
            CAST(:child_workflow_id AS TEXT), CAST(:started_at AS BIGINT), CAST(:ended_at AS BIGINT)
        WHERE EXISTS (
            SELECT 1 FROM {s}workflows
            WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id
            {for_share})
        ON CONFLICT (workflow_id, position) DO NOTHING""",
    "get_steps": """
        SELECT position, name, kind, output, error, child_workflow_id, started_at, ended_at
        FROM {s}steps WHERE workflow_id = :workflow_id ORDER BY position""",
    "get_steps_of": """
        SELECT workflow_id, position, name, kind, output, error, child_workflow_id, started_at, ended_at
        FROM {s}steps WHERE workflow_id IN :ids ORDER BY workflow_id, position""",
    "get_step": """
        SELECT position, name, kind, output, error, child_workflow_id, started_at, ended_at
        FROM {s}steps WHERE workflow_id = :workflow_id AND position = :position""",
    "copy_steps": """
        INSERT INTO {s}steps (workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at)
        SELECT :new_workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at
        FROM {s}steps WHERE workflow_id = :workflow_id AND position < :before""",
    # -- transaction outputs (application database) ----------------------------------
    "insert_tx_output": """
        INSERT INTO {s}transaction_outputs (workflow_id, position, output, created_at)
        VALUES (:workflow_id, :position, :output, :now)""",
    "get_tx_output": """
        SELECT output FROM {s}transaction_outputs WHERE workflow_id = :workflow_id AND position = :position""",
    # -- executors ------------------------------------------------------------------
    "heartbeat": """
        INSERT INTO {s}executors (executor_id, host, pid, started_at, heartbeat_at)
        VALUES (:executor_id, :host, :pid, :now, :now)
        ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at""",
    "list_executors": "SELECT executor_id, host, pid, started_at, heartbeat_at FROM {s}executors",
    "delete_executor": "DELETE FROM {s}executors WHERE executor_id = :executor_id",
    # -- logs -----------------------------------------------------------------------
    "insert_log": """
        INSERT INTO {s}logs (workflow_id, position, seq, time, level, step, message)
        VALUES (:workflow_id, :position, :seq, :time, :level, :step, :message)
        ON CONFLICT (workflow_id, position, seq) DO NOTHING""",
    # -- messages and events ------------------------------------------------------------
    "insert_message": """
        INSERT INTO {s}messages (destination_id, topic, message, idempotency_key, created_at)
        VALUES (:destination_id, :topic, :message, :idempotency_key, :now)""",
    "insert_message_key": """
        INSERT INTO {s}message_keys (destination_id, idempotency_key) VALUES (:destination_id, :idempotency_key)
        ON CONFLICT (destination_id, idempotency_key) DO NOTHING""",
    "oldest_message": """
        SELECT message_id, message FROM {s}messages
        WHERE destination_id = :destination_id AND topic = :topic
        ORDER BY message_id LIMIT 1""",
    "delete_message": "DELETE FROM {s}messages WHERE message_id = :message_id",
    "set_event": """
        INSERT INTO {s}events (workflow_id, key, value, updated_at) VALUES (:workflow_id, :key, :value, :now)
        ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
    "get_event": "SELECT value FROM {s}events WHERE workflow_id = :workflow_id AND key = :key",
    # -- queue dequeue (inside one transaction) ---------------------------------------------
    "queue_lock": "SELECT pg_advisory_xact_lock(hashtext('wf.queue.' || :queue))",
    "queue_running": """
        SELECT COUNT(*) FROM {s}workflows WHERE queue = :queue AND status = 'PENDING'
            {queue_index_terms}""",
    "queue_started_since": "SELECT COUNT(*) FROM {s}workflows WHERE queue = :queue AND started_at >= :since",
    "queue_candidates": """
        SELECT workflow_id FROM {s}workflows
        WHERE queue = :queue AND status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= :now)
            AND name IN :names
            {queue_index_terms}
        ORDER BY priority, created_at, {seq} LIMIT :n {skip_locked}""",
    "queue_take": """
        UPDATE {s}workflows SET status = 'PENDING', executor_id = :executor_id, started_at = :now,
            updated_at = :now, deadline = CASE WHEN timeout_ms IS NULL THEN NULL ELSE :now + timeout_ms END
        WHERE workflow_id = :workflow_id AND status = 'ENQUEUED'
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline""",
    "release_taken": """
        UPDATE {s}workflows SET status = 'ENQUEUED', executor_id = NULL, started_at = NULL, updated_at = :now
        WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id""",
    "queue_names": "SELECT DISTINCT queue FROM {s}workflows WHERE status = 'ENQUEUED' AND queue IS NOT NULL",
    # -- queues ------------------------------------------------------------------------
    "upsert_queue": """
        INSERT INTO {s}queues (name, concurrency, worker_concurrency, rate_limit_n, rate_limit_seconds,
            priority, updated_at)
        VALUES (:name, :concurrency, :worker_concurrency, :rate_limit_n, :rate_limit_seconds, :priority, :now)
        ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
            worker_concurrency = excluded.worker_concurrency, rate_limit_n = excluded.rate_limit_n,
            rate_limit_seconds = excluded.rate_limit_seconds, priority = excluded.priority,
            updated_at = excluded.updated_at""",
    "list_queues": """
        SELECT q.name, q.concurrency, q.worker_concurrency, q.rate_limit_n, q.rate_limit_seconds, q.priority
        FROM {s}queues q ORDER BY q.name""",
    "queue_counts": """
        SELECT queue, status, COUNT(*) FROM {s}workflows
        WHERE queue IS NOT NULL AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue, status""",
}


def render(name: str, dialect: str, version_table: str = "schema_version", **extra: str) -> str:
    """The named statement with its placeholders filled for ``dialect``."""
    values = {
        "s": "wf." if dialect == "postgresql" else "",
        "version_table": version_table,
        **DIALECT_FRAGMENTS[dialect],
        **extra,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], Q[name])
