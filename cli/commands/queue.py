"""wf queue list."""

from __future__ import annotations

from .. import common, errors, options, output


@errors.command
def queue_list(
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.QueuesOutput = None,
    debug: options.Debug = False,
) -> int:
    """Each queue: workflows enqueued and running, and its limits (as the
    code that declares it last published them). -o ids prints the names."""
    fmt = common.output_format(out, json_out)
    common.setup(db, create=False)
    import wf

    queues = wf.list_queues()
    if fmt == "table" and not queues:
        output.print_lines("no queues", stderr=True)
        return errors.OK
    output.emit(
        fmt,
        [output.queue_json(q) for q in queues],
        [q.name for q in queues],
        lambda: output.print_queues(queues),
    )
    return errors.OK
