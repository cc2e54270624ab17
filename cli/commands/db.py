"""wf db migrate / wf db status."""

from __future__ import annotations

import typer

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


# how `wf db status` names where the URL came from (wf._config.SOURCE_*)
_SOURCE_TEXT = {
    "argument": ("--db", "the --db option"),
    "environment": ("WF_DATABASE_URL", "the WF_DATABASE_URL environment variable"),
    "pyproject": ("pyproject.toml", "database_url under [tool.wf] in ./pyproject.toml"),
    "default": ("default", "the default (no --db, WF_DATABASE_URL or pyproject.toml [tool.wf])"),
}


@errors.command
def status(
    ctx: typer.Context,
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Show the system database's URL (password masked), where that URL came
    from (--db, WF_DATABASE_URL, pyproject.toml [tool.wf] or the default) and
    the schema version. Creates nothing: a missing database is exit 5."""
    fmt = common.document_format(out, json_out, "wf db status prints one document")
    # --db's value may have come from WF_DATABASE_URL: then let wf find it there itself,
    # so the source it reports is the environment, not the option
    source = ctx.get_parameter_source("db")
    from_env = source is not None and source.name == "ENVIRONMENT"
    common.setup(None if from_env else db, create=False)
    import wf
    from wf._support import database_url_source

    where, said = _SOURCE_TEXT.get(database_url_source(), (database_url_source(),) * 2)
    try:
        st = wf.schema_status()
    except wf.NoDatabaseError as e:
        raise wf.NoDatabaseError(f"{e}; the URL is {said}") from None
    if fmt == "json":
        output.dump_json(output.schema_json(st, url_source=where))
    else:
        state = "up to date" if st.current_version >= st.latest_version else "needs `wf db migrate`"
        output.print_lines(
            f"database  {st.url}",
            f"from      {said}",
            f"schema    version {st.current_version} (latest {st.latest_version}): {state}",
        )
    return errors.OK
