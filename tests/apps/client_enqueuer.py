"""A service without the workflow code, for tests/integration/test_client.py:

    python -m tests.apps.client_enqueuer DATABASE_URL

proves it cannot import ``clientjobs``, then drives a worker through
wf.Client only: enqueues ``clientjobs:add`` and ``clientjobs:fail`` by name
and reads their outcomes, and has a send / get_event round trip with a
running ``clientjobs:chat``. Prints one JSON document of what it saw."""

from __future__ import annotations

import importlib.util
import json
import sys

import wf


def main(url: str) -> int:
    assert importlib.util.find_spec("clientjobs") is None, "the client must not have the code"
    seen: dict[str, object] = {}
    with wf.Client(url) as client:
        added = client.enqueue("clientjobs:add", 2, b=3, workflow_id="svc-add")
        seen["add"] = added.result(timeout=60)
        seen["add_status"] = added.status().status
        failing = client.enqueue("clientjobs:fail", "boom")
        try:
            failing.get_result(timeout=60)
        except wf.WfError as e:  # the class is not here: a WorkflowFailedError
            seen["fail"] = [type(e).__name__, str(e)]
        chat = client.enqueue("clientjobs:chat", "svc", workflow_id="svc-chat")
        seen["ready"] = client.get_event("svc-chat", "ready", timeout=60)
        client.send("svc-chat", {"hello": "from the service"}, topic="go")
        seen["chat"] = chat.result(timeout=60)
        seen["got"] = client.get_event("svc-chat", "got", timeout=5)
        seen["steps"] = [(s.name, s.kind) for s in client.list_steps("svc-chat")]
        seen["modules"] = sorted(m for m in sys.modules if m.startswith("clientjobs"))
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
