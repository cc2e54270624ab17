"""wf's benchmark suite: ``python -m bench`` (see bench/run.py and SPEC §9).

Every figure is measured in one run, side by side, on one Postgres server (one
fresh database per scenario) and on SQLite files, and printed as one table.
Benchmarks are not tests: nothing here is collected by pytest."""
