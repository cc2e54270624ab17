"""Every SQL statement wf runs, by name, and the optional filters of the two
filtered reads (``list_workflows``, ``get_logs``). ``{s}`` is the schema
prefix; the other ``{name}`` placeholders are the dialect's fragments
(dialects.py): ``{for_share}`` locks the workflow row on Postgres so an
ownership check and the write it guards cannot interleave with a recovery
claim (SQLite has one writer at a time, so it needs no lock). Parameters are
always bound, never formatted in. Status names in the SQL are
``wf._records.Status`` values (checked when this module loads)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .._records import Status

if TYPE_CHECKING:
    from .dialects import Dialect

WORKFLOW_COLUMNS = (
    "workflow_id, status, name, inputs, output, error, executor_id, queue, priority, dedup_id, "
    "parent_workflow_id, recovery_attempts, max_recovery_attempts, created_at, updated_at, "
    "started_at, deadline, timeout_ms, not_before, slot_held, cancel_reason, forked_from, "
    "forked_from_step, app_version, partition_key, debounce_key, debounce_until"
)
STEP_COLUMNS = (
    "position, name, kind, output, error, child_workflow_id, started_at, ended_at, attempts, detail"
)

# The run that may write into a workflow: the row in flight under this
# executor, and the very row the run was started on: ``:run_token`` is that
# row's created_at (a workflow deleted and recorded again under its ID has
# a newer one), so a run of a deleted workflow writes nothing into the next
# workflow with its ID, also when that one lands on the same executor.
# NULL: no token (tests and tools that write as an executor).
_THIS_RUN = (
    "executor_id = :executor_id"
    " AND (CAST(:run_token AS BIGINT) IS NULL OR created_at = CAST(:run_token AS BIGINT))"
)
# a plain write of a running (or just cancelled) workflow's run (a log line,
# a step's set_event): only while that run may still write into its row
_RUN_MAY_WRITE = (
    """        WHERE EXISTS (
            SELECT 1 FROM {s}workflows
            WHERE workflow_id = :workflow_id AND status IN ('PENDING', 'CANCELLED') AND """
    + _THIS_RUN
    + """
            {for_share})"""
)

# A call's record, written only while its workflow is in the given state
# under this run (the row is read FOR SHARE on Postgres, so a claim or a
# delete cannot interleave with the check and the write).
_RECORD_STEP_WHILE = (
    """
        INSERT INTO {s}steps (workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at, attempts, detail)
        SELECT CAST(:workflow_id AS TEXT), CAST(:position AS INTEGER), CAST(:name AS TEXT),
            CAST(:kind AS TEXT), CAST(:output AS TEXT), CAST(:error AS TEXT),
            CAST(:child_workflow_id AS TEXT), CAST(:started_at AS BIGINT), CAST(:ended_at AS BIGINT),
            CAST(:attempts AS INTEGER), CAST(:detail AS TEXT)
        WHERE EXISTS (
            SELECT 1 FROM {s}workflows
            WHERE workflow_id = :workflow_id AND status = '%s'
                AND """
    + _THIS_RUN
    + """
            {for_share})
        ON CONFLICT (workflow_id, position) DO NOTHING"""
)

# Many calls' records in one statement (Postgres, group_commit.py): each
# row written only while its workflow runs under its executor, as
# _RECORD_STEP_WHILE; NOWAIT, because a batch holding some rows' locks must
# never wait for another's (a cancel or claim of several rows could then
# deadlock with it): a refused batch is redone row by row by its callers.
# RETURNING names the rows written; the rest were refused.
_RECORD_STEPS_WHILE = """
        INSERT INTO {s}steps (workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at, attempts, detail)
        SELECT v.workflow_id, v.position, v.name, v.kind, v.output, v.error, v.child_workflow_id,
            v.started_at, v.ended_at, v.attempts, v.detail
        FROM unnest(CAST(:workflow_id AS TEXT[]), CAST(:position AS INTEGER[]),
            CAST(:name AS TEXT[]), CAST(:kind AS TEXT[]), CAST(:output AS TEXT[]),
            CAST(:error AS TEXT[]), CAST(:child_workflow_id AS TEXT[]),
            CAST(:started_at AS BIGINT[]), CAST(:ended_at AS BIGINT[]),
            CAST(:attempts AS INTEGER[]), CAST(:detail AS TEXT[]), CAST(:executor_id AS TEXT[]),
            CAST(:run_token AS BIGINT[]))
            AS v(workflow_id, position, name, kind, output, error, child_workflow_id, started_at,
                ended_at, attempts, detail, executor_id, run_token)
        WHERE EXISTS (
            SELECT 1 FROM {s}workflows w
            WHERE w.workflow_id = v.workflow_id AND w.status = '%s'
                AND w.executor_id = v.executor_id
                AND (v.run_token IS NULL OR w.created_at = v.run_token)
            FOR SHARE NOWAIT)
        ON CONFLICT (workflow_id, position) DO NOTHING
        RETURNING workflow_id, position"""

# The partitioned dequeue's candidates: the oldest eligible workflows whose
# partition has room, per partition no more than its free slots
# (partition_concurrency minus its running workflows) and its rate budget
# (partition_rate_limit minus its starts in the window); workflows without
# a partition count only against the queue's own limits.
#
# Stage 1, the queue's head: its first 8 * :n waiting workflows in queue
# order, leaving out partitions without room, ranked within their
# partitions. A workflow's rank there is its rank among all its partition's
# waiting ones (those before it are in the head too), so when the head
# holds :n that may start, or is everything waiting, those are the answer:
# the usual case, costing :n rows whatever the backlog. Stage 2, when a few
# partitions fill the head (a tenant's burst): the head again without the
# partitions whose room it filled (their candidates are the head's), which
# answers the same way. Stage 3, past both: each statement's own way. A
# stage's reads run only when it is reached (Postgres: a one-time filter;
# SQLite: a LIMIT of 0, which skips a loop whose terms it would otherwise
# test on every row).
_PARTITION_ROOM = """
        busy AS (
            SELECT partition_key, COUNT(*) AS n FROM (
                SELECT partition_key FROM {s}workflows
                WHERE queue = :queue AND status = 'PENDING' {queue_index_terms}
                UNION ALL
                SELECT partition_key FROM {s}workflows
                WHERE queue = :queue AND slot_held = 1
                    AND status IN ('CANCELLED', 'ENQUEUED')) running
            GROUP BY partition_key),
        began AS (
            SELECT partition_key, COUNT(*) AS n FROM {s}queue_starts
            WHERE queue = :queue AND partition_key IS NOT NULL AND started_at >= :p_since
            GROUP BY partition_key),
        no_room AS (
            SELECT partition_key FROM busy WHERE partition_key IS NOT NULL AND n >= :p_concurrency
            UNION
            SELECT partition_key FROM began WHERE n >= :p_rate),"""


def _partition_head(head: str, skip: str, limit: str) -> str:
    """A head (stage 1 or 2): ``head``, ``head_ranked`` (each workflow's
    rank in its partition, the partition's free slots and rate budget) and
    ``head_taken`` (those that may start); ``skip``: partitions left out
    besides those without room."""
    return f"""
        {head} AS (
            SELECT workflow_id, partition_key, priority, created_at, {{seq}} AS seq_
            FROM {{s}}workflows
            WHERE queue = :queue AND status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= :now)
                AND name IN :names AND slot_held = 0 {{app_version_terms}}
                AND (partition_key IS NULL OR (
                    partition_key NOT IN (SELECT partition_key FROM no_room){skip}))
                {{queue_index_terms}}
            ORDER BY priority, created_at, {{seq}} LIMIT {limit}),
        {head}_ranked AS (
            SELECT h.*, ROW_NUMBER() OVER (PARTITION BY h.partition_key
                    ORDER BY h.priority, h.created_at, h.seq_) AS rn,
                :p_concurrency - COALESCE(b.n, 0) AS slots, :p_rate - COALESCE(g.n, 0) AS budget
            FROM {head} h
            LEFT JOIN busy b ON b.partition_key = h.partition_key
            LEFT JOIN began g ON g.partition_key = h.partition_key),
        {head}_taken AS (
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM {head}_ranked
            WHERE partition_key IS NULL OR (rn <= slots AND rn <= budget)),"""


_PARTITION_SETTLED = """
        settled AS (
            SELECT (SELECT COUNT(*) FROM head_taken) >= :n
                OR (SELECT COUNT(*) FROM head) < 8 * :n AS done)"""

_PARTITION_HEADS = (
    _PARTITION_ROOM
    + _partition_head("head", "", "8 * :n")
    + _PARTITION_SETTLED
    + """,
        filled AS (
            SELECT DISTINCT partition_key FROM head_ranked
            WHERE partition_key IS NOT NULL AND (rn >= slots OR rn >= budget)),"""
    + _partition_head(
        "head2",
        " AND partition_key NOT IN (SELECT partition_key FROM filled)",
        "CASE WHEN (SELECT done FROM settled) THEN 0 ELSE 8 * :n END",
    )
    + """
        stage AS (
            SELECT CASE WHEN (SELECT done FROM settled) THEN 1
                WHEN (SELECT COUNT(*) FROM head2_taken) >= :n
                    OR (SELECT COUNT(*) FROM head2) < 8 * :n THEN 2
                ELSE 3 END AS n),"""
)

# stage 3: the waiting workflows without a partition
_PARTITION_UNPARTITIONED = """
        unpartitioned AS (
            SELECT workflow_id, partition_key, priority, created_at, {seq} AS seq_
            FROM {s}workflows
            WHERE queue = :queue AND status = 'ENQUEUED' AND partition_key IS NULL
                AND (not_before IS NULL OR not_before <= :now)
                AND name IN :names AND slot_held = 0 {app_version_terms}
                {queue_index_terms}
            ORDER BY priority, created_at, {seq}
            LIMIT CASE WHEN (SELECT n FROM stage) < 3 THEN 0 ELSE :n END)"""

# the answer of the stage reached (stage 2: its head's, and the first
# head's of the partitions it left out)
_PARTITION_ANSWER = """
        SELECT workflow_id, partition_key FROM (
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM head_taken
            WHERE (SELECT n FROM stage) = 1
            UNION ALL
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM head_taken
            WHERE (SELECT n FROM stage) = 2 AND partition_key IN (SELECT partition_key FROM filled)
            UNION ALL
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM head2_taken
            WHERE (SELECT n FROM stage) = 2
            UNION ALL
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM partitioned
            WHERE (SELECT n FROM stage) = 3
            UNION ALL
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM unpartitioned
            WHERE (SELECT n FROM stage) = 3) c
        ORDER BY priority, created_at, seq_ LIMIT :n"""

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
            updated_at, started_at, deadline, timeout_ms, not_before, slot_held, app_version,
            partition_key, debounce_key, debounce_until)
        VALUES (:workflow_id, :status, :name, :inputs, :executor_id, :queue, :priority, :dedup_id,
            :parent_workflow_id, 0, :max_recovery_attempts, :now, :now, :started_at, :deadline,
            :timeout_ms, :not_before, CASE WHEN :status = 'PENDING' THEN 1 ELSE 0 END, :app_version,
            :partition_key, :debounce_key, :debounce_until)
        ON CONFLICT (workflow_id) DO NOTHING""",
    # a child: inserted only while its parent runs under the given executor,
    # so a child called after its parent was cancelled (or adopted) never runs
    "insert_child_workflow": """
        INSERT INTO {s}workflows (workflow_id, status, name, inputs, executor_id, queue, priority,
            dedup_id, parent_workflow_id, recovery_attempts, max_recovery_attempts, created_at,
            updated_at, started_at, deadline, timeout_ms, not_before, slot_held, app_version,
            partition_key, debounce_key, debounce_until)
        SELECT CAST(:workflow_id AS TEXT), CAST(:status AS TEXT), CAST(:name AS TEXT),
            CAST(:inputs AS TEXT), CAST(:executor_id AS TEXT), CAST(:queue AS TEXT),
            CAST(:priority AS INTEGER), CAST(:dedup_id AS TEXT), CAST(:parent_workflow_id AS TEXT),
            0, CAST(:max_recovery_attempts AS INTEGER), CAST(:now AS BIGINT), CAST(:now AS BIGINT),
            CAST(:started_at AS BIGINT), CAST(:deadline AS BIGINT), CAST(:timeout_ms AS BIGINT),
            CAST(:not_before AS BIGINT), CASE WHEN CAST(:status AS TEXT) = 'PENDING' THEN 1 ELSE 0 END,
            CAST(:app_version AS TEXT), CAST(:partition_key AS TEXT), CAST(:debounce_key AS TEXT),
            CAST(:debounce_until AS BIGINT)
        WHERE EXISTS (
            SELECT 1 FROM {s}workflows
            WHERE workflow_id = :parent_workflow_id AND status = 'PENDING'
                AND executor_id = :parent_executor_id
                AND (CAST(:parent_run_token AS BIGINT) IS NULL
                    OR created_at = CAST(:parent_run_token AS BIGINT))
            {for_share})
        ON CONFLICT (workflow_id) DO NOTHING""",
    "get_workflow": "SELECT "
    + WORKFLOW_COLUMNS
    + " FROM {s}workflows WHERE workflow_id = :workflow_id",
    "get_outcome": "SELECT status, output, error FROM {s}workflows WHERE workflow_id = :workflow_id",
    "finish_workflow": """
        UPDATE {s}workflows SET status = :status, output = :output, error = :error, updated_at = :now,
            slot_held = 0
        WHERE workflow_id = :workflow_id AND status = 'PENDING' AND """
    + _THIS_RUN,
    # several runs' finishes in one statement (group commit, Postgres): each
    # row as finish_workflow would, its lock taken NOWAIT so a row another
    # transaction holds fails the batch at once (each is then redone alone)
    "finish_workflows": """
        WITH v AS (
            SELECT * FROM unnest(CAST(:workflow_id AS TEXT[]), CAST(:executor_id AS TEXT[]),
                CAST(:run_token AS BIGINT[]), CAST(:status AS TEXT[]), CAST(:output AS TEXT[]),
                CAST(:error AS TEXT[]), CAST(:now AS BIGINT[]))
                AS v(workflow_id, executor_id, run_token, status, output, error, now)
        ), runs AS (
            SELECT w.workflow_id FROM {s}workflows w JOIN v ON v.workflow_id = w.workflow_id
            WHERE w.status = 'PENDING' AND w.executor_id = v.executor_id
                AND (v.run_token IS NULL OR w.created_at = v.run_token)
            ORDER BY w.workflow_id
            FOR UPDATE OF w NOWAIT
        )
        UPDATE {s}workflows w SET status = v.status, output = v.output, error = v.error,
            updated_at = v.now, slot_held = 0
        FROM v JOIN runs ON runs.workflow_id = v.workflow_id
        WHERE w.workflow_id = v.workflow_id AND w.status = 'PENDING'
            AND w.executor_id = v.executor_id
            AND (v.run_token IS NULL OR w.created_at = v.run_token)
        RETURNING w.workflow_id""",
    "mark_retries_exceeded": """
        UPDATE {s}workflows SET status = 'RETRIES_EXCEEDED', updated_at = :now, slot_held = 0
        WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id""",
    "inflight_executors": "SELECT DISTINCT executor_id FROM {s}workflows WHERE status = 'PENDING'",
    "inflight_of_executor": """
        SELECT workflow_id, name, app_version FROM {s}workflows
        WHERE status = 'PENDING' AND executor_id = :executor_id
        ORDER BY created_at""",
    "inflight_names": """
        SELECT DISTINCT name FROM {s}workflows WHERE status = 'PENDING' AND executor_id = :executor_id""",
    # back on its queue, so the queue's limits still hold for it; this counts
    # a recovery attempt, so past the limit it ends RETRIES_EXCEEDED instead
    # (SPEC §4.6). The deadline stays: the timeout started at the first dequeue.
    "requeue_all": """
        UPDATE {s}workflows SET
            status = CASE WHEN recovery_attempts + 1 > max_recovery_attempts
                THEN 'RETRIES_EXCEEDED' ELSE 'ENQUEUED' END,
            executor_id = NULL, started_at = NULL, slot_held = 0,
            recovery_attempts = recovery_attempts + 1, updated_at = :now
        WHERE status = 'PENDING' AND executor_id = :old_executor_id AND queue IS NOT NULL
            AND updated_at < :before
        RETURNING workflow_id, status""",
    # one statement adopts all of a dead executor's workflows whose code we have
    # -- recovery in batches (the adopting executor's statements) ----------------------------
    # adopts up to :n of a dead executor's workflows whose code we have, in
    # one statement. The batch is chosen once (a CTE with row locks is never
    # inlined) and its rows then updated by primary key: outer terms on
    # status or executor would let the planner scan the in-flight index once
    # per batch row when its statistics are stale. They are not needed: on
    # Postgres the batch's rows are locked (rows another adopter holds are
    # skipped: it takes them), and a row changed since this statement's
    # snapshot is re-checked against the batch's terms when it is locked;
    # SQLite runs the statement under its one write lock.
    "claim_batch": """
        WITH batch AS (
            SELECT workflow_id FROM {s}workflows
            WHERE status = 'PENDING' AND executor_id = :old_executor_id AND name IN :names
                AND (queue IS NULL OR :include_queued = 1) AND updated_at < :before
                {app_version_terms}
            LIMIT :n {skip_locked})
        UPDATE {s}workflows
        SET executor_id = :executor_id, recovery_attempts = recovery_attempts + 1, updated_at = :now,
            slot_held = 1{app_version_stamp}
        WHERE workflow_id IN (SELECT workflow_id FROM batch)
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline,
            created_at""",
    # adopted rows past their recovery attempts (SPEC §4.6), in one statement
    "mark_retries_exceeded_of": """
        UPDATE {s}workflows SET status = 'RETRIES_EXCEEDED', updated_at = :now, slot_held = 0
        WHERE workflow_id IN :ids AND status = 'PENDING' AND executor_id = :executor_id""",
    # this executor's own in-flight rows untouched since :before; the caller
    # drops those it is running and claims the rest by ID (a claim whose
    # answer was lost leaves rows here that nothing runs)
    "own_stale": """
        SELECT workflow_id FROM {s}workflows
        WHERE status = 'PENDING' AND executor_id = :executor_id AND updated_at < :before""",
    "claim_own": """
        UPDATE {s}workflows
        SET recovery_attempts = recovery_attempts + 1, updated_at = :now, slot_held = 1{app_version_stamp}
        WHERE status = 'PENDING' AND executor_id = :executor_id AND workflow_id IN :ids
            AND name IN :names AND updated_at < :before {app_version_terms}
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline,
            created_at""",
    "cancel_workflow": """
        UPDATE {s}workflows SET status = 'CANCELLED', cancel_reason = :reason, updated_at = :now
        WHERE workflow_id = :workflow_id AND status IN ('PENDING', 'ENQUEUED')""",
    # a cancelled run has stopped here: a resume may go ahead
    "release_cancelled_run": """
        UPDATE {s}workflows SET slot_held = 0
        WHERE workflow_id = :workflow_id AND status = 'CANCELLED' AND slot_held = 1 AND """
    + _THIS_RUN,
    "cancelled_among": """
        SELECT workflow_id FROM {s}workflows WHERE workflow_id IN :ids AND status = 'CANCELLED'""",
    # the same, the IDs bound as one array (Postgres: one statement and one plan for any number)
    "cancelled_among_array": """
        SELECT workflow_id FROM {s}workflows
        WHERE workflow_id = ANY(CAST(:ids AS TEXT[])) AND status = 'CANCELLED'""",
    "children_of": "SELECT workflow_id FROM {s}workflows WHERE parent_workflow_id = :workflow_id",
    # conditional on the state the caller read (status, owner, attempts,
    # last update): a claim or dequeue in between makes it change nothing.
    # A cancelled queued run that still holds its slot keeps it (and its
    # executor, whose release ends it): the workflow waits on its queue
    # until that run has stopped.
    "resume_workflow": """
        UPDATE {s}workflows SET status = :status,
            executor_id = CASE WHEN :keep_slot = 1 AND slot_held = 1 THEN executor_id
                ELSE CAST(:executor_id AS TEXT) END,
            slot_held = CASE WHEN :keep_slot = 1 THEN slot_held
                WHEN :status = 'PENDING' THEN 1 ELSE 0 END,
            recovery_attempts = 0, error = NULL, output = NULL, deadline = NULL,
            cancel_reason = NULL, started_at = :started_at, updated_at = :now, queue = :queue,
            app_version = :app_version
        WHERE workflow_id = :workflow_id AND status = :old_status AND status <> 'SUCCESS'
            AND COALESCE(executor_id, '') = :old_executor_id
            AND recovery_attempts = :old_attempts AND updated_at = :old_updated_at""",
    # a workflow waiting on its queue moved to another application version's
    # code on purpose (wf resume --version): conditional on its still
    # waiting with the version the caller read
    "move_enqueued_version": """
        UPDATE {s}workflows SET app_version = :app_version, updated_at = :now
        WHERE workflow_id = :workflow_id AND status = 'ENQUEUED'
            AND COALESCE(app_version, '') = :old_app_version""",
    "expired_deadlines": """
        SELECT workflow_id FROM {s}workflows
        WHERE deadline IS NOT NULL AND deadline < :now AND status IN ('PENDING', 'ENQUEUED')""",
    # newest first; {where}: the FILTERS below that apply, {page}: PAGE
    "list_workflows": "SELECT "
    + WORKFLOW_COLUMNS
    + " FROM {s}workflows{where} ORDER BY created_at DESC, workflow_id DESC{page}",
    "count_workflows": "SELECT COUNT(*) FROM {s}workflows{where}",
    "child_counts": """
        SELECT parent_workflow_id, COUNT(*) FROM {s}workflows
        WHERE parent_workflow_id IN :ids GROUP BY parent_workflow_id""",
    # -- steps --------------------------------------------------------------------
    # One round trip: the write happens only while this executor still owns the
    # running workflow, which folds the cancellation and ownership checks in.
    "record_step": _RECORD_STEP_WHILE % "PENDING",
    # a call that completed while its workflow was being cancelled: kept, so a
    # resume replays it instead of running it again
    "record_step_cancelled": _RECORD_STEP_WHILE % "CANCELLED",
    "record_steps": _RECORD_STEPS_WHILE % "PENDING",
    # the set_event calls copied into a restarted workflow, in call order
    "copied_event_sets": """
        SELECT output FROM {s}steps
        WHERE workflow_id = :workflow_id AND kind = 'event' AND name = 'set_event'
        ORDER BY position""",
    "get_steps": "SELECT "
    + STEP_COLUMNS
    + " FROM {s}steps WHERE workflow_id = :workflow_id ORDER BY position",
    "get_steps_of": "SELECT workflow_id, "
    + STEP_COLUMNS
    + " FROM {s}steps WHERE workflow_id IN :ids ORDER BY workflow_id, position",
    "get_step": "SELECT "
    + STEP_COLUMNS
    + " FROM {s}steps WHERE workflow_id = :workflow_id AND position = :position",
    "set_forked_from": """
        UPDATE {s}workflows SET forked_from = :forked_from, forked_from_step = :forked_from_step
        WHERE workflow_id = :workflow_id""",
    "copy_steps": """
        INSERT INTO {s}steps (workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at, attempts, detail)
        SELECT :new_workflow_id, position, name, kind, output, error, child_workflow_id,
            started_at, ended_at, attempts, detail
        FROM {s}steps WHERE workflow_id = :workflow_id AND position < :before""",
    # -- transaction outputs (application database) ----------------------------------
    "insert_tx_output": """
        INSERT INTO {s}transaction_outputs (workflow_id, position, output, created_at)
        VALUES (:workflow_id, :position, :output, :now)""",
    "get_tx_output": """
        SELECT output FROM {s}transaction_outputs WHERE workflow_id = :workflow_id AND position = :position""",
    # -- executors ------------------------------------------------------------------
    # the row always names the live process: a restart under a fixed ID
    # replaces the previous process's host, pid and start time
    "heartbeat": """
        INSERT INTO {s}executors (executor_id, host, pid, started_at, heartbeat_at, queues)
        VALUES (:executor_id, :host, :pid, :started_at, :now, :queues)
        ON CONFLICT (executor_id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
            started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
            queues = excluded.queues""",
    "list_executors": "SELECT executor_id, host, pid, started_at, heartbeat_at, queues, workflows FROM {s}executors",
    # the workflows it has registered: written when that set changes, not every beat
    "executor_workflows": "UPDATE {s}executors SET workflows = :workflows WHERE executor_id = :executor_id",
    "delete_executor": "DELETE FROM {s}executors WHERE executor_id = :executor_id",
    # -- logs -----------------------------------------------------------------------
    # a run's line, written only while that run may still write (its row in
    # flight or cancelled with a call still running, under this run: see
    # _THIS_RUN), so a deleted workflow's run leaves none in a reused ID
    "insert_log": """
        INSERT INTO {s}logs (workflow_id, position, seq, time, level, step, message)
        SELECT CAST(:workflow_id AS TEXT), CAST(:position AS INTEGER), CAST(:seq AS INTEGER),
            CAST(:time AS BIGINT), CAST(:level AS TEXT), CAST(:step AS TEXT), CAST(:message AS TEXT)
"""
    + _RUN_MAY_WRITE
    + """
        ON CONFLICT (workflow_id, position, seq) DO NOTHING""",
    # oldest first
    "get_logs": """
        SELECT log_id, workflow_id, time, level, step, message FROM {s}logs{where}
        ORDER BY log_id{page}""",
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
    # a step's set_event (a plain write, not a recorded call): only while its
    # run may write (as insert_log)
    "set_event_of_run": """
        INSERT INTO {s}events (workflow_id, key, value, updated_at)
        SELECT CAST(:workflow_id AS TEXT), CAST(:key AS TEXT), CAST(:value AS TEXT), CAST(:now AS BIGINT)
"""
    + _RUN_MAY_WRITE
    + """
        ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
    "get_event": "SELECT value FROM {s}events WHERE workflow_id = :workflow_id AND key = :key",
    "list_events": """
        SELECT key, value, updated_at FROM {s}events WHERE workflow_id = :workflow_id ORDER BY key""",
    # -- queue dequeue (inside one transaction) ---------------------------------------------
    "queue_lock": "SELECT pg_advisory_xact_lock(hashtext('wf.queue.' || :queue))",
    # bounded waits on Postgres: a peer frozen inside its dequeue transaction
    # loses its session (and its locks) after a few idle seconds, and whoever
    # waits for its lock gives up after a few and tries again later
    "queue_timeouts": """
        SELECT set_config('lock_timeout', :lock_timeout, true),
            set_config('idle_in_transaction_session_timeout', :idle_timeout, true)""",
    # running = in flight, plus runs that were cancelled (or resumed back onto
    # the queue) but have not stopped yet: they hold their slot until then
    "queue_running": """
        SELECT (SELECT COUNT(*) FROM {s}workflows WHERE queue = :queue AND status = 'PENDING'
                {queue_index_terms})
            + (SELECT COUNT(*) FROM {s}workflows WHERE queue = :queue AND slot_held = 1
                AND status IN ('CANCELLED', 'ENQUEUED'))""",
    "queue_started_since": """
        SELECT COUNT(*) FROM {s}queue_starts WHERE queue = :queue AND started_at >= :since""",
    "queue_record_start": """
        INSERT INTO {s}queue_starts (queue, started_at, partition_key)
        VALUES (:queue, :now, :partition_key)""",
    "queue_prune_starts": "DELETE FROM {s}queue_starts WHERE queue = :queue AND started_at < :since",
    "queue_candidates": """
        SELECT workflow_id FROM {s}workflows
        WHERE queue = :queue AND status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= :now)
            AND name IN :names AND slot_held = 0 {app_version_terms}
            {queue_index_terms}
        ORDER BY priority, created_at, {seq} LIMIT :n {skip_locked}""",
    # the same, among given workflows only (resumed in a process that takes them itself)
    "queue_candidates_only": """
        SELECT workflow_id FROM {s}workflows
        WHERE queue = :queue AND status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= :now)
            AND name IN :names AND slot_held = 0 AND workflow_id IN :ids {app_version_terms}
        ORDER BY priority, created_at, {seq} LIMIT :n {skip_locked}""",
    # the deadline is set when the timeout starts (the first dequeue) and
    # never moves later: the earliest of that and a deadline inherited from a
    # parent (already in the row)
    "queue_take": """
        UPDATE {s}workflows SET status = 'PENDING', executor_id = :executor_id, started_at = :now,
            updated_at = :now, slot_held = 1{app_version_stamp},
            deadline = CASE WHEN timeout_ms IS NULL THEN deadline
                WHEN deadline IS NULL OR deadline > :now + timeout_ms THEN :now + timeout_ms
                ELSE deadline END
        WHERE workflow_id = :workflow_id AND status = 'ENQUEUED' AND slot_held = 0
            AND (not_before IS NULL OR not_before <= :now)
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline,
            EXISTS (SELECT 1 FROM {s}steps s WHERE s.workflow_id = {s}workflows.workflow_id),
            created_at""",
    # a queue without global limits: the candidates taken in one statement
    # (no lock, no transaction). On Postgres rows another dequeuer holds are
    # skipped and the rest re-checked when locked; SQLite has one writer.
    # The order key comes back too, so the batch starts in queue order.
    "queue_take_batch": """
        WITH batch AS (
            SELECT workflow_id FROM {s}workflows
            WHERE queue = :queue AND status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= :now)
                AND name IN :names AND slot_held = 0 {app_version_terms}
                {queue_index_terms}
            ORDER BY priority, created_at, {seq} LIMIT :n {skip_locked})
        UPDATE {s}workflows SET status = 'PENDING', executor_id = :executor_id, started_at = :now,
            updated_at = :now, slot_held = 1{app_version_stamp},
            deadline = CASE WHEN timeout_ms IS NULL THEN deadline
                WHEN deadline IS NULL OR deadline > :now + timeout_ms THEN :now + timeout_ms
                ELSE deadline END
        WHERE workflow_id IN (SELECT workflow_id FROM batch) AND status = 'ENQUEUED' AND slot_held = 0
            AND (not_before IS NULL OR not_before <= :now)
        RETURNING workflow_id, name, inputs, recovery_attempts, max_recovery_attempts, deadline,
            EXISTS (SELECT 1 FROM {s}steps s WHERE s.workflow_id = {s}workflows.workflow_id),
            priority, created_at, {seq}""",
    "release_taken": """
        UPDATE {s}workflows SET status = 'ENQUEUED', executor_id = NULL, started_at = NULL,
            slot_held = 0, updated_at = :now
        WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id""",
    # the runs of these workflows have stopped here: free the slots they held
    "queue_release_slots": """
        UPDATE {s}workflows SET slot_held = 0
        WHERE workflow_id IN :ids AND executor_id = :executor_id AND slot_held = 1
            AND status IN ('CANCELLED', 'ENQUEUED')""",
    "queue_slot_executors": """
        SELECT DISTINCT executor_id FROM {s}workflows
        WHERE slot_held = 1 AND status IN ('CANCELLED', 'ENQUEUED')""",
    "queue_slots_of": """
        SELECT workflow_id, updated_at FROM {s}workflows
        WHERE executor_id = :executor_id AND slot_held = 1 AND status IN ('CANCELLED', 'ENQUEUED')""",
    # -- debouncing and dedup that joins (enqueue's side) --------------------------------
    # a debounced enqueue joins the workflow waiting for its key: its start
    # moves to :until (never past the burst's debounce_until), its inputs
    # become this call's. Conditional on its still waiting (a dequeue that
    # took it first makes this change nothing: the caller inserts anew) and
    # on the same function, partition ('' for none) and priority
    "debounce_extend": """
        UPDATE {s}workflows SET inputs = :inputs, updated_at = :now,
            not_before = CASE WHEN debounce_until IS NOT NULL AND debounce_until < :until
                THEN debounce_until ELSE :until END
        WHERE queue = :queue AND debounce_key = :key AND status = 'ENQUEUED' AND slot_held = 0
            AND name = :name AND COALESCE(partition_key, '') = :partition_key
            AND priority = :priority
        RETURNING workflow_id""",
    "debounce_waiting": """
        SELECT name, partition_key, priority FROM {s}workflows
        WHERE queue = :queue AND debounce_key = :key AND status = 'ENQUEUED'""",
    "dedup_live": """
        SELECT workflow_id, name FROM {s}workflows
        WHERE queue = :queue AND dedup_id = :dedup_id AND status IN ('ENQUEUED', 'PENDING')""",
    # -- partitions (a queue with partition limits) ---------------------------------------
    # stage 1 alone (_PARTITION_HEADS), sent first (planned in less than
    # half the time of the whole): its candidates and true when they are
    # the answer; else one row (NULL, NULL, false), and the whole is sent
    "queue_partition_head": "WITH"
    + _PARTITION_ROOM
    + _partition_head("head", "", "8 * :n")
    + _PARTITION_SETTLED
    + """
        SELECT c.workflow_id, c.partition_key, s.done FROM settled s
        LEFT JOIN (
            SELECT workflow_id, partition_key, priority, created_at, seq_ FROM head_taken
            ORDER BY priority, created_at, seq_ LIMIT :n) c ON s.done
        ORDER BY c.priority, c.created_at, c.seq_""",
    # the candidates (_PARTITION_HEADS); stage 3: every partition's waiting
    # workflows ranked at once (SQLite: no LATERAL; -1: no limit)
    "queue_candidates_partitioned": "WITH"
    + _PARTITION_HEADS
    + """
        ranked AS (
            SELECT workflow_id, partition_key, priority, created_at, {seq} AS seq_,
                ROW_NUMBER() OVER (PARTITION BY partition_key
                    ORDER BY priority, created_at, {seq}) AS rn
            FROM {s}workflows
            WHERE queue = :queue AND status = 'ENQUEUED' AND partition_key IS NOT NULL
                AND (not_before IS NULL OR not_before <= :now)
                AND name IN :names AND slot_held = 0 {app_version_terms}
                AND partition_key NOT IN (SELECT partition_key FROM no_room)
            LIMIT CASE WHEN (SELECT n FROM stage) < 3 THEN 0 ELSE -1 END),
        partitioned AS (
            SELECT r.workflow_id, r.partition_key, r.priority, r.created_at, r.seq_ FROM ranked r
            LEFT JOIN busy b ON b.partition_key = r.partition_key
            LEFT JOIN began g ON g.partition_key = r.partition_key
            WHERE r.rn + COALESCE(b.n, 0) <= :p_concurrency
                AND r.rn + COALESCE(g.n, 0) <= :p_rate),"""
    + _PARTITION_UNPARTITIONED
    + _PARTITION_ANSWER,
    # the same (Postgres: Dialect.lateral_joins); stage 3: each
    # partition's first workflows that fit its room: the partitions read off
    # wf_workflows_partition_waiting (index only; a skip scan's probe, one
    # per partition, costs as much as a hundred of its entries), then per
    # partition with room an index range of at most that room (LATERAL):
    # no sort, and no heap read of any workflow past its partition's room
    "queue_candidates_partition_heads": "WITH"
    + _PARTITION_HEADS
    + """
        keys AS (
            SELECT DISTINCT partition_key FROM {s}workflows
            WHERE queue = :queue AND status = 'ENQUEUED' AND partition_key IS NOT NULL),
        partitioned AS (
            SELECT t.workflow_id, t.partition_key, t.priority, t.created_at, t.seq_ FROM keys k
            LEFT JOIN busy b ON b.partition_key = k.partition_key
            LEFT JOIN began g ON g.partition_key = k.partition_key
            CROSS JOIN LATERAL (
                SELECT w.workflow_id, w.partition_key, w.priority, w.created_at, w.{seq} AS seq_
                FROM {s}workflows w
                WHERE w.queue = :queue AND w.status = 'ENQUEUED' AND w.partition_key = k.partition_key
                    AND (w.not_before IS NULL OR w.not_before <= :now)
                    AND w.name IN :names AND w.slot_held = 0 {app_version_terms}
                ORDER BY w.priority, w.created_at, w.{seq}
                LIMIT GREATEST(LEAST(:p_concurrency - COALESCE(b.n, 0),
                    :p_rate - COALESCE(g.n, 0), :n), 0)) t
            WHERE COALESCE(b.n, 0) < :p_concurrency AND COALESCE(g.n, 0) < :p_rate),"""
    + _PARTITION_UNPARTITIONED
    + _PARTITION_ANSWER,
    "partition_counts": """
        SELECT queue, partition_key, status, COUNT(*) FROM {s}workflows
        WHERE partition_key IS NOT NULL AND status IN ('ENQUEUED', 'PENDING')
        GROUP BY queue, partition_key, status""",
    "queue_names": "SELECT DISTINCT queue FROM {s}workflows WHERE status = 'ENQUEUED' AND queue IS NOT NULL",
    # -- schedules ---------------------------------------------------------------------
    # a worker's declared schedules: the cron as that code says it
    "upsert_schedule": """
        INSERT INTO {s}schedules (name, workflow_name, cron, source, updated_at)
        VALUES (:name, :workflow_name, :cron, 'code', :now)
        ON CONFLICT (name) DO UPDATE SET workflow_name = excluded.workflow_name,
            cron = excluded.cron, updated_at = excluded.updated_at""",
    "schedule_ticked": """
        UPDATE {s}schedules SET last_tick = :tick
        WHERE name = :name AND (last_tick IS NULL OR last_tick < :tick)""",
    # -- queues ------------------------------------------------------------------------
    "upsert_queue": """
        INSERT INTO {s}queues (name, concurrency, worker_concurrency, rate_limit_n, rate_limit_seconds,
            priority, updated_at, partition_concurrency, partition_rate_limit_n,
            partition_rate_limit_seconds)
        VALUES (:name, :concurrency, :worker_concurrency, :rate_limit_n, :rate_limit_seconds, :priority,
            :now, :partition_concurrency, :partition_rate_limit_n, :partition_rate_limit_seconds)
        ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
            worker_concurrency = excluded.worker_concurrency, rate_limit_n = excluded.rate_limit_n,
            rate_limit_seconds = excluded.rate_limit_seconds, priority = excluded.priority,
            updated_at = excluded.updated_at,
            partition_concurrency = excluded.partition_concurrency,
            partition_rate_limit_n = excluded.partition_rate_limit_n,
            partition_rate_limit_seconds = excluded.partition_rate_limit_seconds""",
    "list_queues": """
        SELECT q.name, q.concurrency, q.worker_concurrency, q.rate_limit_n, q.rate_limit_seconds, q.priority,
            q.partition_concurrency, q.partition_rate_limit_n, q.partition_rate_limit_seconds
        FROM {s}queues q ORDER BY q.name""",
    "queue_counts": """
        SELECT queue, status, COUNT(*) FROM {s}workflows
        WHERE queue IS NOT NULL AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue, status""",
    # -- wake-up interest (Postgres, the listener's own session; schema 4) -----------------
    # true once registered; false: try again soon (a notifier of that key's
    # bucket has not committed yet)
    "wake_register": "SELECT {s}wake_register(:key)",
    "wake_unregister": "DELETE FROM {s}wake_interest WHERE pid = pg_backend_pid() AND key = ANY(:keys)",
    # rows of sessions that are gone (a killed process, a dropped connection)
    "wake_sweep": """
        DELETE FROM {s}wake_interest
        WHERE pid <> pg_backend_pid() AND pid NOT IN (SELECT pid FROM pg_stat_activity)""",
    "wake_forget_session": "DELETE FROM {s}wake_interest WHERE pid = pg_backend_pid()",
}


# The optional terms of the filtered reads, ANDed into ``{where}``. ``{x}``
# in a term is an IN list of ``len`` binds named x0, x1, ... (bound one by one
# so the statement also runs on the fast lane, which binds no lists).
FILTERS: dict[str, dict[str, str]] = {
    "list_workflows": {
        "statuses": "status IN ({statuses})",
        # DELAYED is shown, not stored: an ENQUEUED row whose delay has not passed
        "delayed": "(status = 'ENQUEUED' AND not_before > :delayed_after)",
        "statuses_or_delayed": "(status IN ({statuses}) OR (status = 'ENQUEUED' AND not_before > :delayed_after))",
        "partition": "partition_key = :partition_key",
        "name": "name = :name",
        # a bare function name matches the qualname after the module's colon
        "function": "(name = :name OR name LIKE :name_suffix ESCAPE '\\')",
        "queue": "queue = :queue",
        "since": "created_at >= :since",
        "until": "created_at <= :until",
        # keyset cursor (created_at, workflow_id); the bare `created_at <= :b_at` gives the
        # planners an index bound (with only the OR, Postgres scanned from the newest row)
        "before": "created_at <= :b_at AND (created_at < :b_at OR workflow_id < :b_id)",
        "parent": "parent_workflow_id = :parent",
        "app_version": "app_version = :app_version",
        "top_level": "parent_workflow_id IS NULL",
        # the dashboard's text search on IDs (SQLite's LIKE ignores ASCII case)
        "id_contains": "workflow_id LIKE :id_like ESCAPE '\\'",
    },
    "get_logs": {
        "workflow_id": "workflow_id = :workflow_id",
        "since": "time >= :since",
        "after_id": "log_id > :after_id",
        "levels": "level IN ({levels})",
    },
}

FILTERS["count_workflows"] = FILTERS["list_workflows"]

# ``{page}``: a LIMIT, an OFFSET (``offset_only`` is the dialect's), both, neither
PAGE = {
    (False, False): "",
    (True, False): " LIMIT :limit",
    (True, True): " LIMIT :limit OFFSET :offset",
    (False, True): "{offset_only}",
}


def like_contains(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching strings that contain ``text``."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def like_suffix(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching strings that end with ``:text``."""
    return "%:" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def render(name: str, dialect: Dialect, version_table: str = "schema_version", **extra: str) -> str:
    """The named statement with its placeholders filled for ``dialect``."""
    values = {
        "s": dialect.schema_prefix,
        "version_table": version_table,
        **dialect.fragments,
        **extra,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], Q[name])


def render_filtered(
    name: str,
    dialect: Dialect,
    filters: Sequence[str],
    lists: Mapping[str, int] | None = None,
    *,
    limit: bool = False,
    offset: bool = False,
) -> str:
    """A filtered read: ``filters`` (keys of ``FILTERS[name]``) ANDed, each
    IN list of ``lists[x]`` binds, then the page clause."""
    lists = lists or {}
    terms = FILTERS[name]
    binds = {x: ", ".join(f":{x}{i}" for i in range(n)) for x, n in lists.items()}
    where = " AND ".join(
        re.sub(r"\{(\w+)\}", lambda m: binds[m.group(1)], terms[f]) for f in filters
    )
    page = PAGE[(limit, offset)].replace("{offset_only}", dialect.fragments["offset_only"])
    return render(name, dialect, where=" WHERE " + where if where else "", page=page)


def _check_statuses() -> None:
    """Every quoted upper-case word in a status comparison is a Status."""
    for sql in Q.values():
        for word in re.findall(r"status\s*(?:=|<>|IN)\s*\(?((?:'[A-Z_]+'(?:,\s*)?)+)", sql):
            for status in re.findall(r"'([A-Z_]+)'", word):
                assert status in Status.ALL, status


_check_statuses()
