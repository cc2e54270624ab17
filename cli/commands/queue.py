"""wf queue list."""

from __future__ import annotations

from .. import common, errors, options, output


@errors.command
def queue_list(
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Each queue: workflows enqueued and running, and its limits (as the
    code that declares it last published them)."""
    common.setup(db)
    import wf

    queues = wf.list_queues()
    if json_out:
        output.dump_json([output.queue_json(q) for q in queues])
    elif queues:
        output.print_queues(queues)
    else:
        output.print_lines("no queues", stderr=True)
    return errors.OK
