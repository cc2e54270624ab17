"""The base of both databases: named queries, reachability (creating a
missing Postgres database) and versioned, concurrency-safe migrations."""

from __future__ import annotations

from typing import Any

from .._config import display_url
from .._errors import DatabaseUnreachableError, NoDatabaseError
from . import schema
from .engine import Database, _first_line, is_connection_error
from .queries import render


class BaseDatabase(Database):
    version_table = "schema_version"
    migrations: list[list[str]] = []

    # the application version this process runs (Config.app_version): its
    # claims and dequeues take only that version's workflows (or unversioned
    # ones, which they stamp); None renders the statements without the terms
    app_version: str | None = None

    def set_app_version(self, version: str | None) -> None:
        self.app_version = version
        self._rendered.clear()

    def q(self, query: str) -> str:
        sql = self._rendered.get(query)
        if sql is None:
            sql = self._rendered[query] = render(
                query, self.backend, self.version_table, **_version_terms(self.app_version)
            )
        return sql

    def run(self, query: str, /, **params: Any) -> Any:
        return self.execute(self.q(query), params)

    def ensure_reachable(self, create: bool = True) -> None:
        """Connect once, creating the Postgres database when it is missing
        (``create=False``: a missing database or SQLite file is NoDatabaseError)."""
        if not create and not self.backend.database_exists(self.url):
            raise self.no_database()
        try:
            self.lane.run("SELECT 1", {})
        except Exception as e:
            if self.backend.is_missing_database(e):
                if not create:
                    raise self.no_database() from None
                self._create_database()
                return
            raise DatabaseUnreachableError(
                f"cannot reach the database {display_url(self.url)}: {_first_line(e)}"
            ) from e

    def open_existing(self) -> None:
        """Reach a wf database without creating anything: a missing database
        or schema is NoDatabaseError; an older schema is migrated forward
        (that creates nothing a user could mistake for data)."""
        self.ensure_reachable(create=False)
        version = self.schema_version()
        if version == 0:
            raise self.no_database()
        if version < len(self.migrations):
            self.migrate()

    def no_database(self) -> NoDatabaseError:
        return NoDatabaseError(
            f"no wf database at {display_url(self.url)} (run `wf db migrate` or start a workflow)"
        )

    def _create_database(self) -> None:
        try:
            self.backend.create_database(self.url)
        except Exception as e:
            raise DatabaseUnreachableError(
                f"database {display_url(self.url)} does not exist and cannot be created: {_first_line(e)}"
            ) from e

    def schema_version(self) -> int:
        """The applied schema version; 0 when there is no schema yet."""
        try:
            return int(self.run("get_version").scalar() or 0)
        except Exception as e:
            if is_connection_error(e):
                raise
            return 0  # no version table: nothing applied

    def migrate(self) -> int:
        """Apply missing migrations; idempotent and safe from many processes at once."""
        if self.schema_version() == len(self.migrations):
            return len(self.migrations)  # one read, the common case

        def attempt() -> int:
            with self.transaction() as conn:
                for stmt in self.backend.migration_preamble():
                    conn.exec_driver_sql(stmt)
                conn.execute(self.q("create_version_table"))
                row = conn.execute(self.q("get_version")).first()
                current = int(row[0]) if row else 0
                if row is None:
                    conn.execute(self.q("insert_version"), {"v": 0})
                for version in range(current + 1, len(self.migrations) + 1):
                    for stmt in schema.statements(self.migrations[version - 1], self.backend):
                        conn.exec_driver_sql(stmt)
                    conn.execute(self.q("set_version"), {"v": version})
                return len(self.migrations)

        return self.retrying(attempt)


def _version_terms(version: str | None) -> dict[str, str]:
    if version is None:
        return {"app_version_terms": "", "app_version_stamp": ""}
    return {
        "app_version_terms": "AND (app_version IS NULL OR app_version = :app_version)",
        "app_version_stamp": ", app_version = COALESCE(app_version, CAST(:app_version AS TEXT))",
    }
