"""Durable logs, events and messages."""

from __future__ import annotations

from typing import Any

from .._records import LOG_LEVELS
from .base import BaseDatabase
from .queries import render_filtered
from .rows import EventRow, now_ms


class MessagingMixin(BaseDatabase):
    # -- logs --------------------------------------------------------------------------

    def insert_log(
        self,
        workflow_id: str,
        position: int,
        seq: int,
        time_ms: int,
        level: str,
        step: str | None,
        message: str,
        *,
        executor_id: str,
        run_token: int | None,
    ) -> bool:
        """A run's durable log line; False when not written (this run may
        no longer write into the workflow: it was deleted, adopted or has
        ended; or the line is there already, written by a replay)."""
        result = self.run(
            "insert_log",
            workflow_id=workflow_id,
            executor_id=executor_id,
            run_token=run_token,
            position=position,
            seq=seq,
            time=time_ms,
            level=level,
            step=step,
            message=message,
        )
        return bool(result.rowcount)

    def get_logs(
        self,
        workflow_id: str | None = None,
        min_level: int | None = None,
        since: int | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[int, str, int, str, str | None, str]]:
        """(log_id, workflow_id, time, level, step, message), oldest first."""
        filters: list[str] = []
        params: dict[str, Any] = {}
        for key, value in (("workflow_id", workflow_id), ("since", since), ("after_id", after_id)):
            if value is not None:
                filters.append(key)
                params[key] = value
        levels: list[str] = []
        if min_level is not None:
            levels = [n for n, v in LOG_LEVELS.items() if v >= min_level]
            filters.append("levels")
            params.update({f"levels{i}": lv for i, lv in enumerate(levels)})
        if limit is not None:
            params["limit"] = limit
        sql = render_filtered(
            "get_logs", self.backend, filters, {"levels": len(levels)}, limit=limit is not None
        )
        return [tuple(r) for r in self.execute(sql, params)]

    # -- events -------------------------------------------------------------------------

    def set_event(self, workflow_id: str, key: str, value: str, conn: Any = None) -> None:
        params = dict(workflow_id=workflow_id, key=key, value=value, now=now_ms())
        if conn is not None:
            self.on(conn, self.q("set_event"), params)
        else:
            self.run("set_event", **params)

    def set_event_of_run(
        self,
        workflow_id: str,
        key: str,
        value: str,
        *,
        executor_id: str,
        run_token: int | None,
        conn: Any = None,
    ) -> bool:
        """A step's set_event: written only while this run may still write
        into the workflow (as ``insert_log``); False when not written."""
        params = dict(
            workflow_id=workflow_id,
            key=key,
            value=value,
            now=now_ms(),
            executor_id=executor_id,
            run_token=run_token,
        )
        if conn is not None:
            return bool(self.on(conn, self.q("set_event_of_run"), params).rowcount)
        return bool(self.run("set_event_of_run", **params).rowcount)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        value = self.run("get_event", workflow_id=workflow_id, key=key).scalar()
        return None if value is None else str(value)

    # -- messages -------------------------------------------------------------------------

    def insert_message(
        self,
        destination_id: str,
        topic: str,
        message: str,
        idempotency_key: str | None,
        conn: Any,
    ) -> bool:
        """Queue a message; False when its idempotency key was seen before."""
        if idempotency_key is not None:
            fresh = self.on(
                conn,
                self.q("insert_message_key"),
                dict(destination_id=destination_id, idempotency_key=idempotency_key),
            ).rowcount
            if not fresh:
                return False
        self.on(
            conn,
            self.q("insert_message"),
            dict(
                destination_id=destination_id,
                topic=topic,
                message=message,
                idempotency_key=idempotency_key,
                now=now_ms(),
            ),
        )
        return True

    def take_message(self, destination_id: str, topic: str, conn: Any) -> str | None:
        row = self.on(
            conn, self.q("oldest_message"), dict(destination_id=destination_id, topic=topic)
        ).first()
        if row is None:
            return None
        self.on(conn, self.q("delete_message"), dict(message_id=row[0]))
        return str(row[1])

    def list_events(self, workflow_id: str) -> list[EventRow]:
        return [EventRow(*r) for r in self.run("list_events", workflow_id=workflow_id)]
