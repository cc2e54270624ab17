"""Rendering of `wf show` and `wf tree`: rich on a terminal, plain lines
when piped (never wrapped, never padded), and their JSON documents.

The shapes of single records (workflow_json, step_json, log_json) and the
shared formatting helpers are cli/output.py's; this module composes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import output

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text
    from wf import LogRecord, StepInfo, WorkflowInfo


@dataclass
class Node:
    """A workflow and its children, as `wf tree` draws them. ``cut`` says the
    children below were not read (the depth guard, or a cycle)."""

    info: WorkflowInfo
    children: list[Node] = field(default_factory=list)
    cut: bool = False

    def infos(self) -> Iterable[WorkflowInfo]:
        """This workflow, then its descendants, depth first."""
        yield self.info
        for c in self.children:
            yield from c.infos()

    def ids(self) -> Iterable[str]:
        return (info.workflow_id for info in self.infos())


@dataclass
class ShowView:
    """Everything `wf show` draws of one workflow."""

    info: WorkflowInfo
    steps: list[StepInfo]
    tree: Node
    logs: list[LogRecord]
    logs_total: int = 0
    # to fit a live view on the screen: the earliest steps left out, the
    # children counted instead of drawn, values cut shorter
    hidden_steps: int = 0
    children_counted: bool = False
    value_limit: int = 2000

    @property
    def running_call(self) -> int | None:
        """The position the workflow runs now (wf records a call when it
        ends, so: the one after the last recorded) while PENDING."""
        if self.info.status != "PENDING":
            return None
        return max((s.position for s in self.steps), default=0) + 1


# -- JSON --------------------------------------------------------------------------


def tree_json(node: Node) -> dict[str, Any]:
    doc = output.workflow_json(node.info)
    doc["children"] = [tree_json(c) for c in node.children]
    return doc


def show_json(view: ShowView) -> dict[str, Any]:
    doc = output.workflow_json(view.info)
    doc["running_call"] = view.running_call
    doc["steps"] = [output.step_json(s) for s in view.steps]
    doc["children"] = [tree_json(c) for c in view.tree.children]
    doc["logs"] = [output.log_json(r) for r in view.logs]
    return doc


# -- the head and the steps of `wf show` ------------------------------------------------


def workflow_rows(view: ShowView, tty: bool) -> output.Rows:
    """`wf status`'s rows, with the call running now."""
    return output.workflow_rows(
        view.info, tty, limit=view.value_limit, running_call=view.running_call
    )


def steps_table(view: ShowView, tty: bool) -> Any:
    """`wf steps`' table, with a line for the steps left out to fit the
    screen first and the call running now last."""
    from rich.text import Text

    table = output.steps_table(tty)
    if view.hidden_steps:
        note = Text(f"… {view.hidden_steps:,} earlier (wf steps {view.info.workflow_id})")
        note.stylize("dim" if tty else "")
        table.add_row("", note, "", "", "", "")
    output.add_steps(table, view.steps, tty=tty, copied_before=view.info.forked_from_step or 0)
    if view.running_call is not None:
        style = "yellow" if tty else ""
        table.add_row(
            str(view.running_call), Text("(running)", style=style), "", "", Text("…"), "…"
        )
    return table


# -- the child tree ------------------------------------------------------------------


def node_label(info: WorkflowInfo, tty: bool) -> Text:
    from rich.text import Text

    label = Text(info.workflow_id, style="bold" if tty else "")
    label.append("  ")
    label.append_text(output.status_text(info.status) if tty else Text(info.status))
    label.append(f"  {info.function or info.name}")
    ran = output.running_time(info)
    if ran != "-":
        label.append(f"  {ran}", style="dim" if tty else "")
    return label


# under a workflow whose children were not read
_CUT_NOTE = "… (not shown: too deep, or a cycle)"


def rich_tree(node: Node, tty: bool) -> Any:
    from rich.text import Text
    from rich.tree import Tree

    def grow(branch: Any, n: Node) -> None:
        for c in n.children:
            grow(branch.add(node_label(c.info, tty)), c)
        if n.cut:
            branch.add(Text(_CUT_NOTE, style="dim"))

    tree = Tree(node_label(node.info, tty), guide_style="dim")
    grow(tree, node)
    return tree


def tree_lines(node: Node, depth: int = 0) -> Iterable[str]:
    """Plain indented lines, two spaces a level, for pipes."""
    yield "  " * depth + node_label(node.info, tty=False).plain
    for c in node.children:
        yield from tree_lines(c, depth + 1)
    if node.cut:
        yield "  " * (depth + 1) + _CUT_NOTE


# -- logs ------------------------------------------------------------------------------


def log_lines(view: ShowView) -> list[Text]:
    return [output.format_log(r, with_id=False) for r in view.logs]


def _logs_title(view: ShowView) -> str:
    if view.logs_total > len(view.logs):
        return f"logs (last {len(view.logs)} of {view.logs_total:,})"
    return "logs"


# -- composing ---------------------------------------------------------------------------


def show_renderable(view: ShowView) -> RenderableType:
    """The terminal view: a panel of the workflow, then its steps, its
    children and its last log lines."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [output.workflow_panel(view.info.workflow_id, workflow_rows(view, tty=True))]
    if view.steps or view.running_call is not None or view.hidden_steps:
        parts += [Text("steps", style="bold"), steps_table(view, tty=True), Text("")]
    else:
        parts += [Text("no recorded steps", style="dim"), Text("")]
    if view.tree.children and view.children_counted:
        parts += [Text(children_count_line(view.tree), style="bold"), Text("")]
    elif view.tree.children:
        parts += [Text("children", style="bold"), rich_tree(view.tree, tty=True), Text("")]
    if view.logs:
        parts += [Text(_logs_title(view), style="bold"), *log_lines(view)]
    return Group(*parts)


def children_count_line(tree: Node) -> str:
    """``children (24): 20 SUCCESS, 4 PENDING (wf tree ID)``, for a view too tall."""
    counts: dict[str, int] = {}
    for c in tree.children:
        for info in c.infos():
            counts[info.status] = counts.get(info.status, 0) + 1
    total = sum(counts.values())
    each = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"children ({total:,}): {each} (wf tree {tree.info.workflow_id})"


def fitted(view: ShowView, console: Console) -> RenderableType:
    """The terminal view made to fit the screen (a live region taller than
    the screen cannot be redrawn in place): the earliest steps left out
    first; if that is not enough, the children counted rather than drawn,
    then shorter values, then no log lines. Past that, rich crops it."""
    room = console.height - 1

    def height(v: ShowView) -> int:
        return len(console.render_lines(show_renderable(v), console.options, pad=False))

    if height(view) <= room:
        return show_renderable(view)
    # past the first cut, the room freed goes to the log lines, not to more steps
    few = _keep_steps(view, min(len(view.steps), _FEW_STEPS))
    counted = replace(few, children_counted=True)
    short = replace(counted, value_limit=max(20, console.width - 20))
    candidates = [view, counted, short, replace(short, logs=[])]
    best = view
    for candidate in candidates:
        best = _trim_steps(candidate, room, height)
        if height(best) <= room:
            break
    return show_renderable(best)


_FEW_STEPS = 10


def _keep_steps(view: ShowView, keep: int) -> ShowView:
    """``view`` with only its latest ``keep`` steps (the rest counted)."""
    n = len(view.steps)
    return replace(view, steps=view.steps[n - keep :], hidden_steps=view.hidden_steps + n - keep)


def _trim_steps(view: ShowView, room: int, height: Callable[[ShowView], int]) -> ShowView:
    """``view`` with as many of its latest steps as fit in ``room`` lines."""
    excess = height(view) - room
    if excess <= 0 or not view.steps:
        return view
    keep = max(0, len(view.steps) - excess - 1)  # one line says what is left out
    while True:
        trimmed = _keep_steps(view, keep)
        over = height(trimmed) - room
        if keep == 0 or over <= 0:
            return trimmed
        keep = max(0, keep - over)


def show_lines(view: ShowView) -> list[str]:
    """The piped view: ``label  value`` lines, then the sections, each row on
    one line."""
    lines = output.kv_lines([("workflow", view.info.workflow_id), *workflow_rows(view, tty=False)])
    if view.steps or view.running_call is not None:
        lines += ["", "steps", *output.plain_lines(steps_table(view, tty=False))]
    else:
        lines += ["", "no recorded steps"]
    if view.tree.children:
        lines += ["", "children", *tree_lines(view.tree)]
    if view.logs:
        lines += ["", _logs_title(view), *(t.plain for t in log_lines(view))]
    return lines


def print_show(view: ShowView) -> None:
    if output.is_terminal():
        output.console().print(show_renderable(view))
    else:
        output.write_lines(show_lines(view))


def print_tree(node: Node) -> None:
    if output.is_terminal():
        output.console().print(rich_tree(node, tty=True))
    else:
        output.write_lines(tree_lines(node))
