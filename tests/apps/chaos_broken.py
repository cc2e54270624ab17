"""A module that raises while it is imported (tests/reliability/test_bad_input.py)."""

raise RuntimeError("chaos_broken refuses to import")
