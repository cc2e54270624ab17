"""Exit codes (SPEC §5) and the one-line error report every command shares."""

from __future__ import annotations

import functools
import re
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec

import typer

OK = 0
FAILED = 1  # the workflow ended in ERROR, or the command failed
USAGE = 2  # bad usage or bad input
STOPPED = 3  # CANCELLED, RETRIES_EXCEEDED, or an await timeout
NOT_FOUND = 4  # no such workflow
UNREACHABLE = 5  # the database cannot be reached
INTERRUPTED = 130


class CliError(Exception):
    """A failure the CLI itself detects; ``exit_code`` says which."""

    exit_code = FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInput(CliError):
    exit_code = USAGE


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, CliError):
        return exc.exit_code
    import wf

    if isinstance(exc, wf.DatabaseUnreachableError):
        return UNREACHABLE
    if isinstance(exc, wf.WorkflowNotFoundError):
        return NOT_FOUND
    if isinstance(
        exc,
        wf.ConfigurationError
        | wf.SerializationError
        | wf.WorkflowConflictError
        | wf.QueueDedupError,
    ):
        return USAGE
    if isinstance(exc, wf.WorkflowCancelledError | wf.RetriesExceededError | wf.AwaitTimeoutError):
        return STOPPED
    return FAILED


def _mask(text: str) -> str:
    from wf._support import mask_text

    return mask_text(text)


_DRIVER_PREFIX = re.compile(r"^\([\w.]+\)\s*")


def _core(exc: BaseException) -> str:
    """The gist of a message: its first line, without SQLAlchemy's driver
    prefix, SQL echo and documentation link."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    text = _DRIVER_PREFIX.sub("", text)
    for cut in (" [SQL:", " (Background on this error"):
        text = text.split(cut, 1)[0]
    return " ".join(text.split())


def _one(exc: BaseException) -> str:
    import wf

    if isinstance(exc, wf.WfError | CliError):
        return " ".join(str(exc).split()) or type(exc).__name__
    msg = " ".join(str(exc).split())
    if "[SQL:" in msg or _DRIVER_PREFIX.match(msg):  # a driver's error: without its SQL echo
        msg = _core(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def describe(exc: BaseException) -> str:
    """One line: the error's message, then each cause not already said."""
    text = _one(exc)
    seen = {id(exc)}
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        core = _core(cause)
        if core and core.lower() not in text.lower():
            text += f" (caused by {type(cause).__name__}: {core})"
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return _mask(text)


def report(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` on stderr (one line; the traceback too with --debug) and
    return its exit code."""
    if debug:
        tb = "".join(traceback.format_exception(exc))
        sys.stderr.write(_mask(tb))
    sys.stderr.write(f"error: {describe(exc)}\n")
    sys.stderr.flush()
    return exit_code_for(exc)


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {_mask(message)}\n")


P = ParamSpec("P")


def command(fn: Callable[P, int | None]) -> Callable[P, None]:
    """Wrap a command: its return value is the exit code; any exception is
    reported as one line (``--debug``: with traceback) and mapped to its exit
    code; the executor is shut down on the way out."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        debug = bool(kwargs.get("debug", False))
        code: int
        try:
            code = fn(*args, **kwargs) or OK
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            code = INTERRUPTED
        except Exception as exc:
            code = report(exc, debug)
        finally:
            shutdown_quietly(debug)
        raise typer.Exit(code)

    return wrapper


def shutdown_quietly(debug: bool = False) -> None:
    """Stop this process's executor if it started; a failure to is only
    reported with ``debug`` (the command's own outcome matters more)."""
    try:
        from wf._support import shutdown_if_started

        shutdown_if_started()
    except Exception as exc:
        if debug:
            report(exc, debug)
