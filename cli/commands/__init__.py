"""One module per group of commands. Each imports only typer at module level."""
