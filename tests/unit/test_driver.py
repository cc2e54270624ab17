"""The one rewrite of wf's named-parameter SQL into each driver's style."""

from __future__ import annotations

import sqlite3

import pytest
from wf._sysdb.dialects import POSTGRES, SQLITE
from wf._sysdb.driver import expand_lists, to_pyformat


def test_lists_expand_into_one_bind_each() -> None:
    sql, params = expand_lists(
        "SELECT 1 WHERE a IN :ids AND b = :id AND c IN :names",
        {"ids": ["x", "y"], "id": 3, "names": ("n",)},
    )
    assert sql == "SELECT 1 WHERE a IN (:ids__0, :ids__1) AND b = :id AND c IN (:names__0)"
    assert params == {"ids__0": "x", "ids__1": "y", "id": 3, "names__0": "n"}


def test_an_empty_list_matches_nothing() -> None:
    conn = sqlite3.connect(":memory:")
    sql, params = expand_lists("SELECT 1 WHERE 'a' IN :ids", {"ids": []})
    assert conn.execute(sql, params).fetchall() == []


def test_pyformat_leaves_casts_and_doubles_percent() -> None:
    assert (
        to_pyformat("SELECT :a::text, x LIKE '5%', :b") == "SELECT %(a)s::text, x LIKE '5%%', %(b)s"
    )


@pytest.mark.parametrize("dialect", [POSTGRES, SQLITE], ids=["postgresql", "sqlite"])
def test_a_bind_named_like_a_prefix_of_another_is_not_confused(dialect: object) -> None:
    sql, params = dialect.style("x IN :id AND y = :id_2", {"id": [1, 2], "id_2": 5})  # type: ignore[attr-defined]
    assert params == {"id__0": 1, "id__1": 2, "id_2": 5}
    assert "id_2" in sql and sql.count("id__") == 2
