"""wf db migrate / wf db status."""

from __future__ import annotations

from .. import common, errors, options, output


@errors.command
def migrate(
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Create or upgrade the system database's schema (idempotent; safe while
    other processes launch). The database itself is created if it is missing."""
    common.setup(db)
    import wf

    before: int | None
    try:
        before = wf.schema_status().current_version
    except Exception:  # e.g. no database or schema yet: migrate creates them (or says why not)
        before = None
    version = wf.migrate()
    st = wf.schema_status()
    if json_out:
        doc = output.schema_json(st)
        doc["previous_version"] = before
        output.dump_json(doc)
    elif before == version:
        output.print_lines(
            f"{st.url}: schema already at version {version} (latest {st.latest_version})"
        )
    else:
        output.print_lines(f"{st.url}: schema migrated from version {before or 0} to {version}")
    return errors.OK


@errors.command
def status(
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Show the system database's URL (password masked) and schema version."""
    common.setup(db)
    import wf

    st = wf.schema_status()
    if json_out:
        output.dump_json(output.schema_json(st))
    else:
        state = "up to date" if st.current_version >= st.latest_version else "needs `wf db migrate`"
        output.print_lines(
            f"database  {st.url}",
            f"schema    version {st.current_version} (latest {st.latest_version}): {state}",
        )
    return errors.OK
