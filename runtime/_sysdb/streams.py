"""The SQL of streams (wf.write_stream / close_stream / read_stream).

A stream is the rows of ``streams`` with one (workflow_id, key), in the
order of ``position``: the position of the recorded call that wrote the row
(so a value's place in its stream is fixed by the workflow's code, the same
on every replay, and the write and its call record share one transaction).
A close is a row too (``closed = 1``, no value): the stream's last. Readers
page through ``position > :after``; that cannot skip a row because one
workflow's stream writes commit one after another in position order (the
sync calls run in the workflow's thread; the async twin chains them).

Rows belong to their workflow (a foreign key, ON DELETE CASCADE): deleting a
workflow (wf.delete, wf.gc) deletes its streams in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import BaseDatabase
from .rows import now_ms

# Statements by name, ``{s}`` the schema prefix (as in queries.py).
SQL: dict[str, str] = {
    # a value, unless the stream was closed (0 rows: closed, or this very row
    # written already, which only a refused duplicate of the call can meet)
    "stream_write": """
        INSERT INTO {s}streams (workflow_id, key, position, value, closed, created_at)
        SELECT CAST(:workflow_id AS TEXT), CAST(:key AS TEXT), CAST(:position AS INTEGER),
            CAST(:value AS TEXT), CAST(:closed AS INTEGER), CAST(:now AS BIGINT)
        WHERE NOT EXISTS (
            SELECT 1 FROM {s}streams WHERE workflow_id = :workflow_id AND key = :key AND closed = 1)
        ON CONFLICT (workflow_id, key, position) DO NOTHING""",
    # Postgres: a write or close and its call's record in one statement (one
    # round trip, like a step's record): the record is written only while
    # the workflow runs under this run (its row read FOR SHARE, as
    # queries.py's record_step); a write to a closed stream records
    # :closed_error and writes nothing. Answers (recorded, refused as closed).
    "stream_record": """
        WITH c AS (
            SELECT EXISTS (SELECT 1 FROM {s}streams
                WHERE workflow_id = :workflow_id AND key = :key AND closed = 1) AS was_closed
        ), rec AS (
            INSERT INTO {s}steps (workflow_id, position, name, kind, output, error,
                child_workflow_id, started_at, ended_at, attempts, detail)
            SELECT CAST(:workflow_id AS TEXT), CAST(:position AS INTEGER), CAST(:name AS TEXT),
                CAST(:kind AS TEXT),
                CASE WHEN c.was_closed AND CAST(:closed AS INTEGER) = 0 THEN NULL ELSE 'null' END,
                CASE WHEN c.was_closed AND CAST(:closed AS INTEGER) = 0
                    THEN CAST(:closed_error AS TEXT) END,
                NULL, CAST(:started_at AS BIGINT), CAST(:now AS BIGINT), 1, NULL
            FROM c
            WHERE EXISTS (
                SELECT 1 FROM {s}workflows
                WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id = :executor_id
                    AND (CAST(:run_token AS BIGINT) IS NULL
                        OR created_at = CAST(:run_token AS BIGINT))
                FOR SHARE)
            ON CONFLICT (workflow_id, position) DO NOTHING
            RETURNING error
        ), ins AS (
            INSERT INTO {s}streams (workflow_id, key, position, value, closed, created_at)
            SELECT CAST(:workflow_id AS TEXT), CAST(:key AS TEXT), CAST(:position AS INTEGER),
                CAST(:value AS TEXT), CAST(:closed AS INTEGER), CAST(:now AS BIGINT)
            FROM rec, c WHERE NOT c.was_closed
            ON CONFLICT (workflow_id, key, position) DO NOTHING
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM rec), (SELECT count(*) FROM rec WHERE error IS NOT NULL),
            (SELECT count(*) FROM ins)""",
    # SQLite (no writes in WITH): the same in one transaction, this first
    "stream_is_closed": """
        SELECT 1 FROM {s}streams WHERE workflow_id = :workflow_id AND key = :key AND closed = 1""",
    # the next page after a position (-1: from the start)
    "stream_read": """
        SELECT position, value, closed, created_at FROM {s}streams
        WHERE workflow_id = :workflow_id AND key = :key AND position > :after
        ORDER BY position LIMIT :n""",
    # a restart that copies the calls before a position copies what they wrote
    "stream_copy": """
        INSERT INTO {s}streams (workflow_id, key, position, value, closed, created_at)
        SELECT :new_workflow_id, key, position, value, closed, created_at
        FROM {s}streams WHERE workflow_id = :workflow_id AND position < :before""",
}

# rows per read: a reader far behind catches up in pages
PAGE = 500

_rendered: dict[tuple[str, str], str] = {}


def sql(db: Any, name: str) -> str:
    """The named statement for ``db``'s dialect."""
    key = (db.backend.name, name)
    text = _rendered.get(key)
    if text is None:
        text = _rendered[key] = SQL[name].replace("{s}", db.backend.schema_prefix)
    return text


@dataclass(frozen=True)
class StreamRow:
    position: int  # the writing call's (0-based)
    value: str | None  # JSON (wf's encoding); None on the close row
    closed: bool
    created_at: int


class StreamsMixin(BaseDatabase):
    def record_stream_call(
        self,
        *,
        workflow_id: str,
        executor_id: str,
        position: int,
        name: str,
        kind: str,
        key: str,
        value: str | None,
        closed: bool,
        started_at: int,
        closed_error: str,
        run_token: int | None = None,
    ) -> tuple[bool, bool]:
        """A workflow's stream write (``closed``: its close) and the call's
        record, atomically: (recorded, refused). Not recorded: the workflow is
        not running under ``executor_id`` any more, or the call is recorded
        already (our own write whose answer a dropped connection lost), and
        nothing was written. Refused: a write to a closed stream, recorded
        with the error ``closed_error`` and nothing written. ``run_token``:
        the run's row (its created_at), as ``record_step``."""
        params = dict(
            workflow_id=workflow_id,
            executor_id=executor_id,
            position=position,
            name=name,
            kind=kind,
            key=key,
            value=value,
            closed=1 if closed else 0,
            started_at=started_at,
            now=now_ms(),
            closed_error=closed_error,
            run_token=run_token,
        )
        if self.backend.name == "postgresql":  # one statement
            row = self.execute(sql(self, "stream_record"), params).first()
            return bool(row and row[0]), bool(row and row[1])

        def attempt() -> tuple[bool, bool]:
            with self.transaction() as conn:
                was_closed = (
                    self.on(conn, sql(self, "stream_is_closed"), params).first() is not None
                )
                refused = was_closed and not closed
                if not self.record_step(  # type: ignore[attr-defined]
                    workflow_id,
                    executor_id,
                    position,
                    name,
                    kind,
                    None if refused else "null",
                    closed_error if refused else None,
                    started_at,
                    conn=conn,
                    run_token=run_token,
                ):
                    return False, False  # nothing written: the transaction is empty
                if not was_closed:
                    self.write_stream(conn, workflow_id, key, position, value, closed=closed)
                return True, refused

        return self.retrying(attempt)

    def write_stream(
        self,
        conn: Any,
        workflow_id: str,
        key: str,
        position: int,
        value: str | None,
        *,
        closed: bool = False,
    ) -> bool:
        """Append a value (or the close) inside ``conn``'s transaction; False
        when the stream was closed before (nothing written)."""
        params = dict(
            workflow_id=workflow_id,
            key=key,
            position=position,
            value=value,
            closed=1 if closed else 0,
            now=now_ms(),
        )
        return bool(self.on(conn, sql(self, "stream_write"), params).rowcount)

    def read_stream(
        self, workflow_id: str, key: str, after: int = -1, n: int = PAGE
    ) -> list[StreamRow]:
        """The rows after position ``after``, in order, at most ``n``."""
        rows = self.execute(
            sql(self, "stream_read"), dict(workflow_id=workflow_id, key=key, after=after, n=n)
        )
        return [StreamRow(int(r[0]), r[1], bool(r[2]), int(r[3])) for r in rows]

    def copy_streams(self, conn: Any, workflow_id: str, new_workflow_id: str, before: int) -> None:
        """Copy what the calls before ``before`` wrote to ``new_workflow_id``'s streams."""
        self.on(
            conn,
            sql(self, "stream_copy"),
            dict(workflow_id=workflow_id, new_workflow_id=new_workflow_id, before=before),
        )
