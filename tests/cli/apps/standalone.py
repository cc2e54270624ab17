"""Loaded by file path (path/to/file.py:function)."""

import wf


@wf.workflow()
def hello(who: str = "file") -> str:
    return f"hi {who}"
