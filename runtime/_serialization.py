"""wf's JSON: plain JSON plus tagged forms for the Python values JSON lacks.

No pickle, ever. A tagged value is ``{"__wf__": TAG, "v": ...}``; a user dict
that happens to contain the key ``__wf__`` (or non-string keys) is itself tagged
as ``dict`` so decoding is unambiguous. Dataclasses are rebuilt only when their
class is already imported (decoding never imports code); otherwise they decode
to plain dicts.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import json
import sys
import uuid
from typing import Any

from ._errors import SerializationError, WorkflowFailedError
from ._records import ErrorInfo

_TAG = "__wf__"
_MAX_DEPTH = 200


def _enc(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise SerializationError(f"value nested deeper than {_MAX_DEPTH} levels")
    t = type(value)
    if value is None or t is str or t is int or t is bool:
        return value
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {_TAG: "float", "v": repr(value)}
        return value
    if t is list:
        return [_enc(v, depth + 1) for v in value]
    if t is dict:
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: _enc(v, depth + 1) for k, v in value.items()}
        return {
            _TAG: "dict",
            "v": [[_enc(k, depth + 1), _enc(v, depth + 1)] for k, v in value.items()],
        }
    if t is tuple:
        return {_TAG: "tuple", "v": [_enc(v, depth + 1) for v in value]}
    if isinstance(value, _dt.datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, _dt.date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, _dt.time):
        return {_TAG: "time", "v": value.isoformat()}
    if isinstance(value, _dt.timedelta):
        return {_TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, decimal.Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, bytes | bytearray):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        return {_TAG: "set", "v": [_enc(v, depth + 1) for v in value]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {
            f.name: _enc(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
        return {_TAG: "dataclass", "cls": f"{_module_of(cls)}:{cls.__qualname__}", "v": fields}
    if isinstance(value, list | dict | str | int | float):  # subclasses: store as the base type
        base: Any = next(b for b in (bool, int, float, str, list, dict) if isinstance(value, b))
        return _enc(base(value), depth)
    raise SerializationError(
        f"cannot store a value of type {t.__module__}.{t.__qualname__}: {_short(value)}"
    )


def _module_of(cls: type) -> str:
    mod = cls.__module__
    if mod == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            return str(spec.name)
    return mod


def _short(value: Any) -> str:
    try:
        r = repr(value)
    except Exception:
        r = "<unprintable>"
    return r if len(r) <= 80 else r[:77] + "..."


def _dec(value: Any) -> Any:
    t = type(value)
    if t is list:
        return [_dec(v) for v in value]
    if t is not dict:
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _dec(v) for k, v in value.items()}
    v = value.get("v")
    if tag == "tuple":
        return tuple(_dec(x) for x in v)
    if tag == "dict":
        return {_dec(k): _dec(x) for k, x in v}
    if tag == "datetime":
        return _dt.datetime.fromisoformat(v)
    if tag == "date":
        return _dt.date.fromisoformat(v)
    if tag == "time":
        return _dt.time.fromisoformat(v)
    if tag == "timedelta":
        return _dt.timedelta(seconds=v)
    if tag == "uuid":
        return uuid.UUID(v)
    if tag == "decimal":
        return decimal.Decimal(v)
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "set":
        return {_dec(x) for x in v}
    if tag == "float":
        return float(v)
    if tag == "dataclass":
        fields = {k: _dec(x) for k, x in v.items()}
        cls: Any = _loaded_class(value.get("cls", ""))
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            try:
                return cls(**fields)
            except TypeError:
                pass
        return fields
    return {k: _dec(x) for k, x in value.items()}


def _loaded_class(path: str) -> Any:
    """The class at ``module:qualname`` if that module is already imported."""
    mod_name, _, qual = path.partition(":")
    obj: Any = sys.modules.get(mod_name)
    if obj is None and mod_name == getattr(
        getattr(sys.modules.get("__main__"), "__spec__", None), "name", None
    ):
        obj = sys.modules["__main__"]
    for part in qual.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def clean_text(text: str) -> str:
    """``text`` as storable UTF-8: undecodable bytes smuggled into a str
    (surrogateescape, e.g. a non-UTF-8 file name) shown as backslash escapes."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dumps(value: Any) -> str:
    """Encode ``value``; raises SerializationError when it cannot be stored."""
    try:
        text = json.dumps(_enc(value, 0), separators=(",", ":"), ensure_ascii=False)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate would fail in the driver instead
        return text
    except UnicodeEncodeError as e:
        raise SerializationError(
            "text holds undecodable characters (lone surrogates) and cannot be stored as UTF-8"
        ) from e
    except RecursionError as e:
        raise SerializationError("value is nested too deeply (or refers to itself)") from e
    except SerializationError:
        raise
    except (TypeError, ValueError) as e:
        raise SerializationError(f"cannot store value: {e}") from e


def loads(text: str | None) -> Any:
    if text is None:
        return None
    return _dec(json.loads(text))


# -- errors -------------------------------------------------------------------


def error_to_info(exc: BaseException) -> ErrorInfo:
    cls = type(exc)
    if isinstance(exc, WorkflowFailedError):
        return ErrorInfo(exc.type_name, clean_text(exc.message))
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    return ErrorInfo(f"{_module_of(cls)}.{cls.__qualname__}", clean_text(message))


def _args_json(exc: BaseException) -> Any:
    """The exception's args as wf JSON when they can be stored; nested
    exceptions become their text (which is how most __str__s show them)."""
    args = [str(a) if isinstance(a, BaseException) else a for a in exc.args]
    try:
        encoded = _enc(args, 0)
        json.dumps(encoded, ensure_ascii=False).encode("utf-8")
        return encoded
    except (SerializationError, RecursionError, UnicodeEncodeError, TypeError, ValueError):
        return None


# A recorded error keeps the chain it was raised from, as ``causes``: at most
# _MAX_CAUSES exceptions (a cycle ends it), each one's message cut to
# _CAUSE_TEXT characters and its args kept only when their JSON is no longer
# than that, so a long chain of huge messages cannot swell the record. The
# error's own message and args are stored whole, as before.
_MAX_CAUSES = 8
_CAUSE_TEXT = 2000


def _chain(exc: BaseException) -> list[BaseException]:
    """What ``exc`` was raised from, outermost first, as a traceback shows it:
    each ``__cause__``, else its ``__context__`` unless suppressed."""
    seen = {id(exc)}
    chain: list[BaseException] = []
    cur = exc
    while len(chain) < _MAX_CAUSES:
        nxt = cur.__cause__
        if nxt is None and not cur.__suppress_context__:
            nxt = cur.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        chain.append(nxt)
        cur = nxt
    return chain


def _cause_doc(exc: BaseException) -> dict[str, Any]:
    info = error_to_info(exc)
    message = info.message
    if len(message) > _CAUSE_TEXT:
        message = message[: _CAUSE_TEXT - 1] + "…"
    doc: dict[str, Any] = {"type": info.type, "message": message}
    args = _args_json(exc)
    if args is not None and len(json.dumps(args, ensure_ascii=False)) <= _CAUSE_TEXT:
        doc["args"] = args
    return doc


def dumps_error(exc: BaseException) -> str:
    info = error_to_info(exc)
    doc: dict[str, Any] = {"type": info.type, "message": info.message}
    args = _args_json(exc)
    if args is not None:
        doc["args"] = args
    causes = [_cause_doc(c) for c in _chain(exc)]
    if causes:
        doc["causes"] = causes
    try:
        return json.dumps(doc, ensure_ascii=False)
    except (TypeError, ValueError):
        doc.pop("args", None)
        for c in causes:
            c.pop("args", None)
        return json.dumps(doc, ensure_ascii=False)


def _info_of(d: Any) -> ErrorInfo:
    """One recorded error's type and message (a record from before causes
    were kept, or a cause, has none)."""
    if not isinstance(d, dict):
        return ErrorInfo("Exception", str(d))
    return ErrorInfo(str(d.get("type", "Exception")), str(d.get("message", "")))


def _causes_of(d: Any) -> list[Any]:
    causes = d.get("causes") if isinstance(d, dict) else None
    return causes if isinstance(causes, list) else []


def loads_error_info(text: str | None) -> ErrorInfo | None:
    if text is None:
        return None
    d = json.loads(text)
    info = _info_of(d)
    return ErrorInfo(info.type, info.message, tuple(_info_of(c) for c in _causes_of(d)))


def _args_of(d: Any) -> list[Any] | None:
    args = d.get("args") if isinstance(d, dict) else None
    return None if args is None else _dec(args)


def rebuild_error_json(text: str) -> BaseException:
    """The recorded error as an exception (see rebuild_error), built from its
    recorded args when it has them, so it is the same value as the first time;
    its ``__cause__`` the recorded chain, rebuilt the same way."""
    d = json.loads(text)
    causes = _causes_of(d)
    return _chained(
        _rebuild_one(_info_of(d), _args_of(d)),
        [_rebuild_one(_info_of(c), _args_of(c)) for c in causes],
    )


def _chained(exc: BaseException, causes: list[BaseException]) -> BaseException:
    """``exc`` raised from ``causes[0]``, raised from ``causes[1]``, ...: each
    link a ``__cause__``, the last one's None (which suppresses any context
    the rebuilt exception picks up where it is raised, wf's own included), so
    its chain is the recorded one wherever a replay raises it."""
    links = [exc, *causes]
    for outer, inner in zip(links, [*causes, None], strict=True):
        outer.__cause__ = inner
    return exc


def _find_class(type_name: str) -> Any:
    mod, _, qual = type_name.rpartition(".")
    if mod in ("builtins", ""):
        return getattr(__import__("builtins"), qual, None)
    # the qualname may contain dots: try the longest loaded module prefix
    parts = type_name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        cls = _loaded_class(".".join(parts[:i]) + ":" + ".".join(parts[i:]))
        if cls is not None:
            return cls
    return None


def rebuild_error(info: ErrorInfo, args: list[Any] | None = None) -> BaseException:
    """The recorded error as an exception: its own class when that class is
    builtin or already imported (decoding never imports code), called with its
    recorded args; else a WorkflowFailedError carrying the type and message.
    Its ``__cause__`` is ``info.causes``, rebuilt from their types and messages."""
    return _chained(_rebuild_one(info, args), [_rebuild_one(c) for c in info.causes])


def _rebuild_one(info: ErrorInfo, args: list[Any] | None = None) -> BaseException:
    cls = _find_class(info.type)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        if args is not None:
            try:
                exc = cls(*args)
                str(exc)
                return exc
            except Exception:
                pass
        try:
            exc = cls.__new__(cls)
            exc.args = (info.message,)
            str(exc)  # some classes' __str__ needs attributes __init__ would set
            return exc
        except Exception:
            pass
    return WorkflowFailedError(info.type, info.message)
