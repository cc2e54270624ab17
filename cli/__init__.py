"""The ``wf`` command line (installed as ``wf.cli``; entry point ``wf.cli.main:main``).

Importing this package must stay cheap: ``wf --help`` loads only typer and the
command signatures. SQLAlchemy, psycopg, rich tables and the user's module are
imported inside the commands that need them."""
