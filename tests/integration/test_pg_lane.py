"""The Postgres lane's statements (wf._sysdb.pg_lane): libpq's blocking
calls with psycopg's adaptation, against a real server: values both ways,
row counts, errors as the cursor raises them, a broken connection as a
connection error, prepared and unprepared (PgBouncer) modes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from wf._sysdb import pg_lane
from wf._sysdb.dialects import POSTGRES, is_integrity_error
from wf._sysdb.driver import Pool, to_pyformat
from wf._sysdb.pg_lane import PgLaneCursor, numbered


def _connect(url: str) -> Any:
    return POSTGRES.connect(url, True)


@pytest.fixture
def conn(pg_database: str) -> Iterator[Any]:
    c = _connect(pg_database)
    c.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, flag BOOLEAN, x DOUBLE PRECISION)",
        prepare=False,
    )
    yield c
    c.close()


def run(cur: PgLaneCursor, sql: str, **params: Any) -> Any:
    return cur.run(to_pyformat(sql), params)


def test_numbered_binds_each_name_once_and_undoubles_percent() -> None:
    text, names = numbered(to_pyformat("SELECT :a, :b, :a WHERE x LIKE '5%' AND y = '%(z)s'"))
    assert text == b"SELECT $1, $2, $1 WHERE x LIKE '5%' AND y = '%(z)s'"
    assert names == ("a", "b")


@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "unprepared"])
def test_values_round_trip_with_row_counts(conn: Any, prepare: bool) -> None:
    cur = PgLaneCursor(conn, prepare)
    insert = "INSERT INTO t (id, name, flag, x) VALUES (:id, :name, :flag, :x)"
    rows = [(1, "ä 🎉", True, 1.5), (2**40, None, False, None), (3, "", None, -0.25)]
    for r in rows:
        assert run(cur, insert, id=r[0], name=r[1], flag=r[2], x=r[3]).rowcount == 1
    got = run(cur, "SELECT id, name, flag, x FROM t ORDER BY id")
    assert got.fetchall() == sorted(rows) and got.rowcount == 3
    # the same statement with other parameter types (None, then a small int)
    assert run(cur, "UPDATE t SET name = :name WHERE id = :id", name=None, id=1).rowcount == 1
    assert run(cur, "UPDATE t SET name = :name WHERE id = :id", name="n", id=2**40).rowcount == 1
    assert run(cur, "DELETE FROM t WHERE id > :id", id=10**15).rowcount == 0
    # a list binds as an array (execute_arrays)
    ids = run(cur, "SELECT id FROM t WHERE id = ANY(:ids) ORDER BY id", ids=[1, 3])
    assert ids.fetchall() == [(1,), (3,)]
    assert run(cur, "SELECT :s || 'x'", s="%").scalar() == "%x"
    named = conn.execute("SELECT count(*) FROM pg_prepared_statements", prepare=False).fetchone()[0]
    assert (named > 0) is prepare  # unprepared: nothing left on the server


def test_errors_are_psycopg_s_and_leave_the_connection_usable(conn: Any) -> None:
    cur = PgLaneCursor(conn, True)
    run(cur, "INSERT INTO t (id) VALUES (:id)", id=1)
    with pytest.raises(psycopg.errors.UniqueViolation) as e:
        run(cur, "INSERT INTO t (id) VALUES (:id)", id=1)
    assert is_integrity_error(e.value) and not POSTGRES.is_connection_error(e.value)
    with pytest.raises(psycopg.errors.SyntaxError):
        run(cur, "SELEC :a", a=1)
    assert not conn.closed and conn.info.transaction_status == 0
    assert run(cur, "SELECT count(*) FROM t").scalar() == 1


def test_a_killed_backend_is_a_connection_error_and_the_pool_recovers(
    conn: Any, pg_database: str
) -> None:
    def pid(cur: PgLaneCursor) -> int:
        return int(run(cur, "SELECT pg_backend_pid()").scalar())

    cur = PgLaneCursor(conn, True)
    other = _connect(pg_database)
    other.execute("SELECT pg_terminate_backend(%s)", (pid(cur),))
    with pytest.raises(psycopg.OperationalError) as e:
        run(cur, "SELECT 1")
    assert POSTGRES.is_connection_error(e.value) and conn.closed

    pool = Pool(
        lambda: _connect(pg_database),
        POSTGRES.is_connection_error,
        max_open=2,
        cursor=lambda c: PgLaneCursor(c, True),
    )
    first = int(pool.run(to_pyformat("SELECT pg_backend_pid()"), {}).scalar())
    other.execute("SELECT pg_terminate_backend(%s)", (first,))
    # the dead idle connection is dropped and the statement runs on a fresh one
    assert int(pool.run(to_pyformat("SELECT pg_backend_pid()"), {}).scalar()) != first
    pool.close()
    other.close()


def test_past_the_prepared_bound_it_starts_over(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_lane, "MAX_PREPARED", 5)
    cur = PgLaneCursor(conn, True)
    for i in range(12):
        assert run(cur, f"SELECT :v + {i}", v=1).scalar() == 1 + i
    held = conn.execute("SELECT count(*) FROM pg_prepared_statements", prepare=False).fetchone()[0]
    assert held <= 5
