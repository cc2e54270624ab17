"""Runnable example apps for wf (see each module's docstring)."""
