"""wf's JSON (SPEC §4.7): plain JSON plus tagged forms, never pickle."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import wf
from wf._serialization import (
    dumps,
    dumps_error,
    loads,
    loads_error_info,
    rebuild_error,
    rebuild_error_json,
)

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Order:
    order_id: uuid.UUID
    placed: dt.datetime
    amount: Decimal
    lines: tuple[Point, ...]
    tags: frozenset[str] = frozenset()
    note: str | None = None


class MyError(Exception):
    pass


class StrDict(dict[str, int]):
    pass


class MyList(list[int]):
    pass


def roundtrip(value: Any) -> Any:
    text = dumps(value)
    assert isinstance(text, str)
    json.loads(text)  # always plain JSON text
    return loads(text)


def same(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        b_keys = {k: k for k in b}
        return len(a) == len(b) and all(
            k in b_keys and same(k, b_keys[k]) and same(v, b[k]) for k, v in a.items()
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -17,
        2**100,
        1.5,
        "",
        'héllo ✓ \u0000 "quoted"',
        [],
        {},
        [1, "a", None, [2.5, {"k": [True]}]],
        {"a": 1, "b": {"c": [1, 2]}},
    ],
    ids=repr,
)
def test_plain_json_values_roundtrip(value: Any) -> None:
    assert same(roundtrip(value), value)


def test_plain_json_is_stored_as_plain_json() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": {}}}
    assert json.loads(dumps(value)) == value


def test_bool_stays_bool_and_int_stays_int() -> None:
    out = roundtrip([True, 1, False, 0])
    assert [type(v) for v in out] == [bool, int, bool, int]


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 2, 29, 13, 45, 1, 123456),
        dt.datetime(2024, 2, 29, 13, 45, 1, tzinfo=dt.UTC),
        dt.datetime(
            2024, 2, 29, 13, 45, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))
        ),
        dt.date(1999, 12, 31),
        dt.time(23, 59, 58, 1),
        dt.timedelta(days=3, seconds=7, microseconds=9),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        uuid.uuid4(),
        Decimal("1.10"),
        Decimal("-0.000000000000000000000001"),
        Decimal("12345678901234567890.123456789"),
        b"",
        b"\x00\xff binary \x80",
        (),
        (1,),
        (1, "two", (3.0, None)),
        {1, 2, 3},
        set(),
        float("inf"),
        float("-inf"),
    ],
    ids=repr,
)
def test_tagged_values_roundtrip(value: Any) -> None:
    assert same(roundtrip(value), value)


def test_nan_roundtrip() -> None:
    assert math.isnan(roundtrip(float("nan")))


def test_datetime_keeps_its_offset() -> None:
    value = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    out = roundtrip(value)
    assert out.utcoffset() == dt.timedelta(hours=9)
    naive = roundtrip(dt.datetime(2024, 1, 1, 12))
    assert naive.tzinfo is None


def test_decimal_keeps_its_exact_digits() -> None:
    out = roundtrip(Decimal("1.10"))
    assert str(out) == "1.10"


def test_bytearray_and_frozenset_come_back_as_bytes_and_set() -> None:
    assert roundtrip(bytearray(b"ab")) == b"ab"
    assert type(roundtrip(bytearray(b"ab"))) is bytes
    out = roundtrip(frozenset({"a", "b"}))
    assert out == {"a", "b"}


def test_tuples_nested_in_containers_stay_tuples() -> None:
    value = {"pairs": [(1, 2), (3, (4, 5))], "t": ({"k": (6,)},)}
    out = roundtrip(value)
    assert same(out, value)


def test_dataclass_roundtrip() -> None:
    assert same(roundtrip(Point(1, 2)), Point(1, 2))
    order = Order(
        order_id=uuid.uuid4(),
        placed=dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC),
        amount=Decimal("19.99"),
        lines=(Point(1, 2), Point(3, 4)),
        tags=frozenset({"gift"}),
    )
    out = roundtrip(order)
    assert isinstance(out, Order)
    assert out.order_id == order.order_id
    assert out.placed == order.placed and out.placed.tzinfo is not None
    assert out.amount == Decimal("19.99")
    assert type(out.lines) is tuple and all(isinstance(p, Point) for p in out.lines)
    assert out.tags == {"gift"}
    assert [roundtrip([Point(0, 0)])[0]] == [Point(0, 0)]


def test_dataclass_of_a_module_not_imported_decodes_to_a_dict() -> None:
    """Decoding never imports code: an unknown class gives its fields as a dict."""
    text = json.dumps({"__wf__": "dataclass", "cls": "no_such_module_xyz:Thing", "v": {"a": 1}})
    assert loads(text) == {"a": 1}
    assert "no_such_module_xyz" not in __import__("sys").modules


def test_non_string_dict_keys_roundtrip() -> None:
    value = {1: "int", 2.5: "float", None: "none", (1, 2): "tuple", False: "bool", "s": "str"}
    assert same(roundtrip(value), value)


def test_dict_with_uuid_and_date_keys() -> None:
    u = uuid.uuid4()
    value = {u: 1, dt.date(2020, 1, 1): 2}
    assert roundtrip(value) == value


@pytest.mark.parametrize(
    "value",
    [
        {"__wf__": "tuple", "v": [1, 2]},
        {"__wf__": "datetime", "v": "2024-01-01T00:00:00"},
        {"__wf__": 1},
        {"__wf__": None, "other": [1]},
        [{"x": {"__wf__": "bytes", "v": "AAAA"}}],
    ],
    ids=repr,
)
def test_user_dicts_that_look_tagged_stay_dicts(value: Any) -> None:
    assert same(roundtrip(value), value)


def test_subclasses_are_stored_as_their_base_type() -> None:
    out = roundtrip(StrDict(a=1))
    assert type(out) is dict and out == {"a": 1}
    out = roundtrip(MyList([1, 2]))
    assert type(out) is list and out == [1, 2]


# -- what cannot be stored ---------------------------------------------------------


class Opaque:
    pass


def _self_list() -> list[Any]:
    a: list[Any] = [1]
    a.append(a)
    return a


def _self_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["me"] = d
    return d


def _deep(n: int) -> list[Any]:
    v: list[Any] = []
    for _ in range(n):
        v = [v]
    return v


@pytest.mark.parametrize(
    "make",
    [
        object,
        Opaque,
        lambda: lambda x: x,
        lambda: print,
        lambda: (i for i in range(3)),
        lambda: _self_list(),
        lambda: _self_dict(),
        lambda: _deep(100_000),
        lambda: {"ok": 1, "bad": object()},
        lambda: [1, 2, {3: Opaque()}],
        lambda: {object(): 1},
        lambda: Point(1, object()),  # type: ignore[arg-type]
        lambda: (1, Opaque()),
        lambda: {Opaque()},
    ],
    ids=[
        "object",
        "instance",
        "lambda",
        "builtin",
        "generator",
        "self-list",
        "self-dict",
        "deep",
        "dict-value",
        "nested",
        "dict-key",
        "dataclass-field",
        "tuple-item",
        "set-item",
    ],
)
def test_unserializable_values_raise_serialization_error(make: Any) -> None:
    with pytest.raises(wf.SerializationError):
        dumps(make())


def test_serialization_error_is_a_wf_error_and_names_the_type() -> None:
    with pytest.raises(wf.WfError) as info:
        dumps({"a": [Opaque()]})
    assert "Opaque" in str(info.value)


def test_moderately_deep_nesting_is_fine() -> None:
    value = _deep(50)
    assert roundtrip(value) == value


# -- errors ---------------------------------------------------------------------------


def test_error_roundtrip_keeps_builtin_class_and_message() -> None:
    info = loads_error_info(dumps_error(ValueError("bad value")))
    assert info is not None
    exc = rebuild_error(info)
    assert type(exc) is ValueError
    assert str(exc) == "bad value"


def test_error_roundtrip_keeps_an_imported_user_class() -> None:
    info = loads_error_info(dumps_error(MyError("boom")))
    assert info is not None
    assert info.type.endswith("MyError")
    exc = rebuild_error(info)
    assert type(exc) is MyError
    assert str(exc) == "boom"


def test_error_of_an_unknown_class_becomes_workflow_failed_error() -> None:
    info = wf.ErrorInfo("no_such_module_xyz.Boom", "it broke")
    exc = rebuild_error(info)
    assert isinstance(exc, wf.WorkflowFailedError)
    assert "it broke" in str(exc) and "Boom" in str(exc)


def test_recorded_error_is_json() -> None:
    recorded = json.loads(dumps_error(MyError("x")))
    assert recorded["type"] == f"{__name__}.MyError"
    assert recorded["message"] == "x"


# -- no pickle --------------------------------------------------------------------------

_PICKLE_USE = re.compile(
    r"^\s*(import|from)\s+(pickle|_pickle|cPickle|dill|cloudpickle|marshal|shelve|jsonpickle)\b"
    r"|\b(pickle|dill|cloudpickle|marshal|jsonpickle)\.(loads?|dumps?|Unpickler|Pickler)\b"
    r"|\bPickleType\b"
    r"|__reduce(_ex)?__",
    re.MULTILINE,
)


def test_no_pickle_anywhere_in_the_library() -> None:
    sources = sorted((REPO / "runtime").rglob("*.py")) + sorted((REPO / "cli").rglob("*.py"))
    assert sources, "library sources not found"
    offenders = [
        f"{p.relative_to(REPO)}: {m.group(0).strip()}"
        for p in sources
        for m in _PICKLE_USE.finditer(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# -- error chains (issue 17) ----------------------------------------------------------------


def _raised(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as e:
        return e
    raise AssertionError("did not raise")


def _explicit() -> None:
    raise RuntimeError("outer") from ValueError("inner")


def _implicit_chain() -> None:
    try:
        try:
            {}["k"]
        except KeyError:
            raise MyError("middle")  # noqa: B904
    except MyError:
        raise RuntimeError("outer")  # noqa: B904


def test_a_recorded_error_keeps_its_explicit_cause() -> None:
    text = dumps_error(_raised(_explicit))
    assert json.loads(text)["causes"] == [
        {"type": "builtins.ValueError", "message": "inner", "args": ["inner"]}
    ]
    info = loads_error_info(text)
    assert info == wf.ErrorInfo(
        "builtins.RuntimeError", "outer", (wf.ErrorInfo("builtins.ValueError", "inner"),)
    )
    exc = rebuild_error(info)  # type: ignore[arg-type]
    assert type(exc) is RuntimeError and str(exc) == "outer"
    assert type(exc.__cause__) is ValueError and str(exc.__cause__) == "inner"
    assert exc.__cause__.__cause__ is None and exc.__suppress_context__


def test_a_recorded_error_keeps_its_implicit_context_chain_outermost_first() -> None:
    exc = _raised(_implicit_chain)
    assert exc.__cause__ is None and not exc.__suppress_context__
    text = dumps_error(exc)
    info = loads_error_info(text)
    assert info is not None
    assert [(c.type, c.message) for c in info.causes] == [
        (f"{__name__}.MyError", "middle"),
        ("builtins.KeyError", "'k'"),
    ]
    # rebuilt from the record: the same chain, as __cause__ links; a KeyError's
    # message (its repr of the key) comes back the same because its args were kept
    again = rebuild_error_json(text)
    assert type(again) is RuntimeError and str(again) == "outer"
    mid = again.__cause__
    assert type(mid) is MyError and str(mid) == "middle"
    assert type(mid.__cause__) is KeyError and str(mid.__cause__) == "'k'"
    assert dumps_error(again) == text  # a replay records the same error


def test_a_suppressed_context_is_not_a_cause() -> None:
    def suppressed() -> None:
        try:
            {}["k"]
        except KeyError:
            raise RuntimeError("clean") from None

    info = loads_error_info(dumps_error(_raised(suppressed)))
    assert info is not None and info.causes == ()
    assert "causes" not in json.loads(dumps_error(ValueError("plain")))


def test_cause_chains_are_bounded_and_cycles_end_them() -> None:
    exc: BaseException = ValueError("0")
    for i in range(1, 30):
        outer = ValueError(str(i))
        outer.__cause__ = exc
        exc = outer
    causes = json.loads(dumps_error(exc))["causes"]
    assert [c["message"] for c in causes] == [str(i) for i in range(28, 20, -1)]  # 8 of them

    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert [c["message"] for c in json.loads(dumps_error(a))["causes"]] == ["b"]


def test_a_long_cause_message_is_cut_and_huge_args_dropped() -> None:
    exc = RuntimeError("outer")
    exc.__cause__ = ValueError("x" * 10_000)
    cause = json.loads(dumps_error(exc))["causes"][0]
    assert len(cause["message"]) == 2000 and cause["message"].endswith("…")
    assert "args" not in cause
    rebuilt = rebuild_error(loads_error_info(dumps_error(exc)))  # type: ignore[arg-type]
    assert str(rebuilt.__cause__) == cause["message"]


def test_an_unknown_cause_class_becomes_a_workflow_failed_error() -> None:
    text = json.dumps(
        {
            "type": "builtins.RuntimeError",
            "message": "outer",
            "causes": [{"type": "no_such_module_xyz.Boom", "message": "it broke"}],
        }
    )
    exc = rebuild_error_json(text)
    assert isinstance(exc.__cause__, wf.WorkflowFailedError)
    assert exc.__cause__.type_name == "no_such_module_xyz.Boom"
    assert loads_error_info(dumps_error(exc)) == loads_error_info(text)


def test_an_error_recorded_before_causes_were_kept_still_loads() -> None:
    old = '{"type": "builtins.ValueError", "message": "old", "args": ["old"]}'
    assert loads_error_info(old) == wf.ErrorInfo("builtins.ValueError", "old")
    assert loads_error_info(old).causes == ()  # type: ignore[union-attr]
    exc = rebuild_error_json(old)
    assert type(exc) is ValueError and str(exc) == "old" and exc.__cause__ is None
    assert loads_error_info('{"type": "builtins.ValueError", "message": "m"}') == wf.ErrorInfo(
        "builtins.ValueError", "m"
    )
