"""Which workflows a command means: `wf list`'s filters, checked before the
database is touched (bad input: exit 2), and the bulk actions' choice of IDs
or filters (`wf cancel`, `wf resume`) with everything those filters match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors, options
from .timeparse import parse_time

if TYPE_CHECKING:
    from wf import WorkflowInfo


def parse_statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    import wf  # lazy: cheap, and loads no database driver

    statuses = wf.Status.ALL
    out: list[str] = []
    for v in values:
        for part in v.split(","):
            s = part.strip().upper().replace("-", "_")
            if s not in statuses:
                raise errors.BadInput(
                    f"--status: unknown status {part.strip()!r} (use one of {', '.join(statuses)})"
                )
            if s not in out:
                out.append(s)
    return out


def _not_blank(value: str | None, option: str) -> str | None:
    if value is not None and not value.strip():
        raise errors.BadInput(f"{option} must not be empty")
    return value


def workflow_filters(
    statuses: list[str] | None,
    name: str | None,
    queue: str | None,
    since: str | None,
    until: str | None,
    children: bool,
    parent: str | None,
    version: str | None = None,
    partition: str | None = None,
) -> dict[str, Any]:
    """`wf list`'s filters, checked (bad input: exit 2), as keyword arguments
    of wf.list_workflows / wf.count_workflows. Top-level workflows only
    unless --children or --parent."""
    extra: dict[str, Any] = {}
    if version is not None:
        extra["app_version"] = options.check_version(version)
    if partition is not None:
        extra["partition_key"] = _not_blank(partition, "--partition")
    return extra | {
        "status": parse_statuses(statuses),
        "name": _not_blank(name, "--name"),
        "queue": options.check_queue(queue),
        "since": parse_time(since, "--since") if since is not None else None,
        "until": parse_time(until, "--until") if until is not None else None,
        "parent": _not_blank(parent, "--parent"),
        "top_level": not children and parent is None,
    }


@dataclass
class Filters:
    """The workflow filters of a bulk action: `wf list`'s, checked (bad input
    fails before the database is touched), as wf.list_workflows arguments."""

    given: bool
    kwargs: dict[str, Any]


_FILTER_OPTIONS = "--status/--name/--queue/--since/--until/--parent/--children"


def parse_filters(
    statuses: list[str] | None,
    name: str | None,
    queue: str | None,
    since: str | None,
    until: str | None,
    children: bool = False,
    parent: str | None = None,
) -> Filters:
    given = children or any(v is not None for v in (statuses, name, queue, since, until, parent))
    return Filters(given, workflow_filters(statuses, name, queue, since, until, children, parent))


def check_ids_or_filters(
    verb: str, ids: list[str] | None, filters: Filters, names: str = _FILTER_OPTIONS
) -> None:
    """IDs or filters, not both nor neither; ``names``: the filter options
    the command has, as its messages list them."""
    if ids and filters.given:
        raise errors.BadInput(f"give workflow IDs or filters ({names}) to {verb}, not both")
    if not ids and not filters.given:
        raise errors.BadInput(f"nothing to {verb}: give workflow IDs, or filters ({names})")


def check_statuses(verb: str, filters: Filters, allowed: tuple[str, ...]) -> None:
    """A --status the action cannot apply to is bad input."""
    for s in filters.kwargs.get("status") or []:
        if s not in allowed:
            raise errors.BadInput(
                f"--status {s}: a {s} workflow cannot be {verb} (use {', '.join(allowed)})"
            )


def select(filters: Filters, default_statuses: tuple[str, ...]) -> list[WorkflowInfo]:
    """Every workflow `wf list` shows with these filters (all of them, not a
    page), oldest first; ``default_statuses`` when no --status is given."""
    import wf

    kwargs = dict(filters.kwargs)
    kwargs["status"] = kwargs.get("status") or list(default_statuses)
    return list(reversed(wf.list_workflows(**kwargs, limit=None)))
