"""The partitioned dequeue's choice, statement by statement, against a model
of its rule (each partition's oldest eligible workflows up to its room, the
oldest of those first, workflows without a partition counted only against
the queue): on the queue's head alone (stage 1), on the head again without
the partitions it filled (stage 2, one tenant's burst at the head) and past
both (stage 3, bursts of several), with busy partitions, rate starts,
delays, priorities, other functions and app versions mixed in."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from wf._sysdb import SystemDatabase
from wf._sysdb.rows import now_ms

Q = "pq"
NAMES = ["t:a", "t:b"]
NO_LIMIT = 2**31 - 1


@pytest.fixture
def db(db_url: str) -> Iterator[SystemDatabase]:
    d = SystemDatabase(db_url)
    d.ensure_reachable()
    d.migrate()
    d.set_app_version("v1")
    yield d
    d.dispose()


# (status, slot_held, not_before from now, function, app version), weights:
# what waits or runs on a queue, mostly workflows that may start
_KINDS = [
    (("ENQUEUED", 0, None, "t:a", None), 70),
    (("ENQUEUED", 0, 600_000, "t:a", None), 5),  # delayed
    (("ENQUEUED", 0, -10, "t:b", None), 5),  # its delay has passed
    (("ENQUEUED", 0, None, "t:other", None), 3),  # a function not served here
    (("ENQUEUED", 0, None, "t:a", "v2"), 3),  # another version's
    (("ENQUEUED", 0, None, "t:a", "v1"), 3),  # this version's
    (("ENQUEUED", 1, None, "t:a", None), 2),  # resumed; its run has not stopped
    (("PENDING", 1, None, "t:a", None), 8),
    (("SUCCESS", 0, None, "t:a", None), 4),
]
_WAITING = 6  # the first six kinds: none of them holds a slot


def _fill(db: SystemDatabase, rnd: random.Random, bursts: list[tuple[str | None, int]]) -> None:
    """Workflows on Q in this order: ``(partition, how many)`` bursts of
    the kinds above (a burst of more than three: waiting ones only, so its
    partition has room), and rate starts in a few partitions."""
    s = db.backend.schema_prefix
    now = now_ms()
    t = now - 600_000
    i = 0
    with db.transaction() as conn:
        for part, count in bursts:
            kinds = _KINDS[:_WAITING] if count > 3 else _KINDS
            for _ in range(count):
                t += rnd.choice([0, 1, 1, 3])  # ties too: insertion order breaks them
                i += 1
                status, slot, nb, name, version = rnd.choices(
                    [k for k, _ in kinds], [w for _, w in kinds]
                )[0]
                conn.execute(
                    f"""INSERT INTO {s}workflows (workflow_id, status, name, inputs, queue,
                        priority, recovery_attempts, max_recovery_attempts, created_at, updated_at,
                        not_before, slot_held, partition_key, app_version, executor_id)
                    VALUES (:id, :status, :name, '[[], {{}}]', :queue, :priority, 0, 50, :t, :t,
                        :nb, :slot, :part, :version, :executor)""",
                    {
                        "id": f"w{i:05d}",
                        "status": status,
                        "name": name,
                        "queue": Q if rnd.random() < 0.95 else "elsewhere",
                        "priority": rnd.choices([0, 1, 2], [85, 10, 5])[0],
                        "t": t,
                        "nb": None if nb is None else now + nb,
                        "slot": slot,
                        "part": part,
                        "version": version,
                        "executor": "other" if slot else None,
                    },
                )
        parts = sorted({p for p, _ in bursts if p is not None})
        for _ in range(len(parts)):
            conn.execute(
                f"INSERT INTO {s}queue_starts (queue, started_at, partition_key) VALUES (:q, :t, :p)",
                {"q": Q, "t": now - rnd.choice([1_000, 120_000]), "p": rnd.choice(parts)},
            )


def _expected(
    db: SystemDatabase, n: int, concurrency: int, rate: tuple[int, float] | None
) -> list[str]:
    """The rule, over the rows as they are."""
    s, seq = db.backend.schema_prefix, db.backend.fragments["seq"]
    rows = db.execute(
        f"""SELECT workflow_id, status, name, partition_key, priority, created_at, {seq},
            not_before, slot_held, app_version FROM {s}workflows WHERE queue = :q""",
        {"q": Q},
    ).fetchall()
    now = now_ms()
    since = now - int(rate[1] * 1000) if rate else now
    starts = db.execute(
        f"SELECT partition_key FROM {s}queue_starts WHERE queue = :q AND started_at >= :since",
        {"q": Q, "since": since},
    ).fetchall()
    busy: dict[str, int] = {}
    began: dict[str, int] = {}
    for r in rows:
        if r[3] is not None and (
            r[1] == "PENDING" or (r[8] == 1 and r[1] in ("CANCELLED", "ENQUEUED"))
        ):
            busy[r[3]] = busy.get(r[3], 0) + 1
    for (p,) in starts:
        if p is not None:
            began[p] = began.get(p, 0) + 1
    eligible = sorted(
        (
            r
            for r in rows
            if r[1] == "ENQUEUED"
            and (r[7] is None or r[7] <= now)
            and r[2] in NAMES
            and r[8] == 0
            and r[9] in (None, "v1")  # this process runs v1
        ),
        key=lambda r: (r[4], r[5], r[6]),
    )
    ranks: dict[str, int] = {}
    out = []
    for r in eligible:
        p = r[3]
        if p is not None:
            ranks[p] = rank = ranks.get(p, 0) + 1
            if rank + busy.get(p, 0) > concurrency:
                continue
            if rate and rank + began.get(p, 0) > rate[0]:
                continue
        out.append(r[0])
    return out[:n]


def _dequeue(
    db: SystemDatabase, n: int, concurrency: int, rate: tuple[int, float] | None
) -> list[str]:
    taken = db.dequeue(
        Q,
        "me",
        n,
        NAMES,
        concurrency=None,
        rate_limit=None,
        partition_concurrency=concurrency,
        partition_rate_limit=rate,
    )
    return [t.workflow_id for t in taken]


SHAPES: dict[str, Any] = {
    # many partitions, a few each: the head answers
    "spread": lambda rnd: [(f"p{rnd.randrange(60)}", rnd.randint(1, 3)) for _ in range(150)],
    # one tenant's burst ahead of the others: the head again without it answers
    "one_burst": lambda rnd: (
        [("big", 400)] + [(rnd.choice([f"p{rnd.randrange(40)}", None]), 1) for _ in range(100)]
    ),
    # bursts of several tenants, and of workflows without a partition: read
    # past both heads
    "bursts": lambda rnd: (
        [("a", 150), ("b", 150), (None, 30), ("c", 150)]
        + [(rnd.choice([None, f"p{rnd.randrange(30)}"]), 1) for _ in range(60)]
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_dequeue_takes_what_the_rule_says(db: SystemDatabase, shape: str) -> None:
    rnd = random.Random(shape)
    _fill(db, rnd, SHAPES[shape](rnd))
    for n, concurrency, rate in [
        (16, 1, None),
        (3, 1, None),
        (2, 2, None),
        (5, NO_LIMIT, (1, 60.0)),
        (4, 3, (2, 60.0)),
        (1, 1, None),
        (16, 2, None),
    ]:
        expected = _expected(db, n, concurrency, rate)
        assert _dequeue(db, n, concurrency, rate) == expected, (shape, n, concurrency, rate)
