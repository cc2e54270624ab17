"""Multi-host Postgres URLs (issue 18): ``postgresql://u@h1:P1,h2:P2/db?...``,
the form libpq tries host by host (with ``target_session_attrs=read-write``:
until one is writable). Config validation accepts it (and says what is wrong
with a bad one, in one line, password masked); masking hides the password and
shows every host; the raw driver gets the URL as libpq takes it; SQLAlchemy's
engine (whose URL parser reads one host) gets its own documented
``?host=h1,h2&port=P1,P2`` form, which psycopg turns back into the same
hosts; without target_session_attrs wf asks for a writable node."""

from __future__ import annotations

import psycopg
import pytest
import wf
from wf._config import display_url, mask_text, mask_url, normalize_url, resolve, url_hosts
from wf._sysdb.dialects import PostgresDialect, sqlalchemy_url

TWO = "postgresql://app:s3cret@127.0.0.1:5432,127.0.0.1:5433/orders?target_session_attrs=read-write"


def _libpq(conninfo: str) -> dict[str, str]:
    """What libpq makes of a conninfo (its own parser, no connection)."""
    return {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(conninfo).items()}


def _sqlalchemy_connect_args(url: str) -> dict[str, str]:
    """What SQLAlchemy's psycopg dialect passes to psycopg.connect."""
    import sqlalchemy as sa

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    return {k: str(v) for k, v in kwargs.items() if k != "context"}


def test_a_multi_host_url_is_accepted_as_given() -> None:
    cfg = resolve(TWO)
    assert cfg.database_url == "postgresql+psycopg://" + TWO.split("://", 1)[1]
    assert url_hosts(cfg.database_url) == ["127.0.0.1:5432", "127.0.0.1:5433"]


def test_masking_hides_the_password_and_shows_every_host() -> None:
    shown = display_url(resolve(TWO).database_url)
    assert shown == (
        "postgresql://app:***@127.0.0.1:5432,127.0.0.1:5433/orders?target_session_attrs=read-write"
    )
    assert mask_url(TWO) == shown
    msg = f'connection to server at "127.0.0.1", port 5433 failed for {TWO}: s3cret rejected'
    assert "s3cret" not in mask_text(msg, TWO)
    assert "127.0.0.1:5432,127.0.0.1:5433" in mask_text(msg, TWO)


def test_the_raw_driver_gets_every_host_and_port() -> None:
    conninfo = PostgresDialect.conninfo(resolve(TWO).database_url)
    got = _libpq(conninfo)
    assert got["host"] == "127.0.0.1,127.0.0.1"
    assert got["port"] == "5432,5433"
    assert got["dbname"] == "orders"
    assert got["user"] == "app" and got["password"] == "s3cret"
    assert got["target_session_attrs"] == "read-write"


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        (TWO, "127.0.0.1,127.0.0.1", "5432,5433"),
        ("postgresql://u@db1,db2/x", "db1,db2", ","),  # libpq: each default
        ("postgresql://u@db1:6000,db2/x?sslmode=disable", "db1,db2", "6000,"),
        ("postgresql://u:p@[::1]:5432,[::2]:5433/x", "::1,::2", "5432,5433"),
        ("postgresql://u@db1:1,db2:2", "db1,db2", "1,2"),
    ],
)
def test_sqlalchemy_gets_the_same_hosts_as_libpq(url: str, host: str, port: str) -> None:
    normalized = normalize_url(url)
    args = _sqlalchemy_connect_args(normalized)
    assert args["host"] == host
    assert args["port"] == port
    libpq = _libpq(PostgresDialect.conninfo(normalized))
    assert libpq["host"] == host
    assert args.get("dbname") == libpq.get("dbname")
    assert args["target_session_attrs"] == libpq["target_session_attrs"] == "read-write"
    if "sslmode" in url:
        assert args["sslmode"] == libpq["sslmode"] == "disable"


def test_a_single_host_url_is_left_to_sqlalchemy_as_it_is() -> None:
    url = normalize_url("postgresql://u:p@db:5432/x")
    assert sqlalchemy_url(url) == url
    assert "target_session_attrs" not in url


def test_without_target_session_attrs_wf_asks_for_a_writable_node() -> None:
    assert normalize_url("postgresql://u@a,b/x").endswith("/x?target_session_attrs=read-write")
    assert normalize_url("postgresql://u@a,b/x?connect_timeout=3").endswith(
        "?connect_timeout=3&target_session_attrs=read-write"
    )
    # what the user chose stays
    assert normalize_url("postgresql://u@a,b/x?target_session_attrs=primary").endswith(
        "?target_session_attrs=primary"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u:hunter2@a:5432,b:nope/x", "Port could not be cast"),
        ("postgresql://u:hunter2@a:5432,b:99999/x", "out of range"),
        ("postgresql://u:hunter2@a,,b/x", "an empty host"),
        ("postgresql://u:hunter2@a,b/x?target_session_attrs=writable", "target_session_attrs"),
    ],
)
def test_a_bad_multi_host_url_is_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(wf.ConfigurationError) as info:
        resolve(url)
    text = str(info.value)
    assert says in text
    assert "hunter2" not in text and "***" in text
    assert len(text.splitlines()) == 1


def test_read_only_answers_count_as_an_outage_unless_the_transaction_is_read_only() -> None:
    """SQLSTATE 25006 (a standby, a demoted primary) is an outage to wait out;
    the same refusal inside a transaction declared READ ONLY is the body's
    own write, an error."""
    from wf._sysdb.dialects import STATEMENT_FAULT
    from wf._sysdb.engine import _mark_statement_fault, is_connection_error

    def read_only_error() -> psycopg.Error:
        e = psycopg.errors.ReadOnlySqlTransaction(
            "cannot execute INSERT in a read-only transaction"
        )
        assert e.sqlstate == "25006"
        return e

    assert is_connection_error(read_only_error())
    body_fault = read_only_error()
    _mark_statement_fault(body_fault)
    assert getattr(body_fault, STATEMENT_FAULT)
    assert not is_connection_error(body_fault)
    standby = psycopg.errors.FeatureNotSupported("cannot use serializable mode in a hot standby")
    assert is_connection_error(standby)
    assert not is_connection_error(psycopg.errors.FeatureNotSupported("something else"))
    assert not is_connection_error(psycopg.errors.UniqueViolation("duplicate key"))
