"""wf tree: a workflow's child workflows, recursively, with their statuses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from .. import common, errors, options, output

if TYPE_CHECKING:
    from wf import WorkflowInfo

    from ..render import Node

# a tree deeper than this is cut (and says so): a guard, not a real limit
MAX_DEPTH = 50


def build_tree(workflow_id: str, max_depth: int = MAX_DEPTH) -> Node:
    """The workflow and its descendants, each level oldest first. A workflow
    met twice (a cycle in the parent links) is not followed again; below
    ``max_depth`` levels the tree is cut."""
    import wf

    from ..render import Node

    root = Node(wf.get_workflow(workflow_id))
    seen = {workflow_id}
    level = [root]
    for _ in range(max_depth):
        level = [child for node in level for child in _grow(node, seen)]
        if not level:
            return root
    for node in level:
        node.cut = _may_have_children(node.info) and bool(_child_rows(node.info.workflow_id))
    return root


def _may_have_children(info: WorkflowInfo) -> bool:
    return info.child_count != 0  # None: not counted


def _child_rows(workflow_id: str) -> list[WorkflowInfo]:
    """The children in the order the parent started them, each with its own
    child count."""
    import wf

    rows = wf.list_workflows(parent=workflow_id, limit=None, child_counts=True)
    return sorted(rows, key=_call_order(workflow_id))


def _call_order(parent_id: str) -> Callable[[WorkflowInfo], tuple[int, int, datetime, str]]:
    """A child's ID is ``PARENT-N`` (N: the call's position) unless it was
    given one: those come first, by N (children started in the same
    millisecond keep their order), then the others by creation."""
    prefix = parent_id + "-"

    def key(w: WorkflowInfo) -> tuple[int, int, datetime, str]:
        rest = w.workflow_id[len(prefix) :] if w.workflow_id.startswith(prefix) else ""
        if rest.isdigit():
            return (0, int(rest), w.created_at, w.workflow_id)
        return (1, 0, w.created_at, w.workflow_id)

    return key


def _grow(node: Node, seen: set[str]) -> list[Node]:
    """Read ``node``'s children into it; return them."""
    from ..render import Node

    if not _may_have_children(node.info):
        return []  # a leaf: no need to ask
    for info in _child_rows(node.info.workflow_id):
        if info.workflow_id in seen:
            node.cut = True
            continue
        seen.add(info.workflow_id)
        node.children.append(Node(info))
    return node.children


@errors.command
def tree(
    workflow_id: options.WorkflowId,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Draw a workflow's child-workflow tree with each one's status.

    -o json: the workflow object with "children": [...] nested; -o jsonl: one
    workflow object per line (each with its parent_workflow_id); -o ids: every
    ID in the tree. Exit 0 whatever their statuses, 4 if unknown.
    """
    out = common.output_format(fmt, json_out)
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    from .. import render

    root = build_tree(workflow_id)
    if out == "json":
        output.dump_json(render.tree_json(root))
    else:
        output.emit(
            out,
            [output.workflow_json(n) for n in root.infos()],
            root.ids(),
            lambda: render.print_tree(root),
        )
    return errors.OK
