"""Workflows the retention tests delete, collect, export and import: a
parent with a child, steps, logs and an event; one that waits."""

from __future__ import annotations

import wf


@wf.step()
def shout(text: str) -> str:
    wf.logger.info("shouting %s", text)
    return text.upper()


@wf.workflow()
def kid(name: str) -> str:
    wf.logger.info("kid %s", name)
    return shout(name)


@wf.workflow()
def family(name: str) -> list[str]:
    wf.set_event("greeting", f"hi {name}")
    loud = shout(name)
    return [loud, kid(name + "-jr")]


@wf.workflow()
def waiting() -> object:
    return wf.recv(timeout=60)
