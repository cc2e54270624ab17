"""The executor's workflow threads: a pool whose limit counts only the
threads that are running, not those blocked waiting (for a child's result, a
message, a timer). A thread entering a wait gives its slot back, so what it
waits for can start; leaving the wait it takes a slot again (before any new
task does). Waiting parents therefore never starve their children, however
many there are."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

# an idle thread lingers this long for more work before it ends
IDLE_SECONDS = 30.0


class ElasticPool:
    def __init__(self, limit: int, name: str = "wf-workflow") -> None:
        self.limit = max(1, limit)
        self._name = name
        self._cond = threading.Condition()
        self._queue: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._threads = 0
        self._active = 0  # holding a slot: running a task, not waiting
        self._idle = 0  # started (or starting) and looking for a task
        self._returning = 0  # waits that ended, waiting for a slot
        self._shutdown = False
        self._exiting = False  # the interpreter is exiting: drain, then end
        self._local = threading.local()
        self._seq = 0

    # -- submitting ---------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.append((fut, fn, args))
            self._kick()
        return fut

    def shutdown(self, cancel_futures: bool = True) -> None:
        """Start nothing more (queued tasks are cancelled); running ones go on."""
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[0].cancel()
            self._cond.notify_all()

    def _register_exit(self) -> None:
        # like concurrent.futures: at interpreter exit, idle threads end once
        # the queue is empty (non-daemon threads are joined at exit)
        ref = weakref.ref(self)

        def at_exit() -> None:
            pool = ref()
            if pool is not None:
                pool._at_exit()

        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            with contextlib.suppress(RuntimeError):  # already exiting
                register(at_exit)

    def _at_exit(self) -> None:
        with self._cond:
            self._exiting = True
            self._cond.notify_all()

    def _can_start(self) -> bool:
        return bool(self._queue) and self._active < self.limit and self._returning == 0

    def _kick(self) -> None:
        """Under the lock: wake threads that may take queued work or a freed
        slot; start a thread when no idle one is left for the queued work."""
        if not self._can_start():
            if self._returning:
                self._cond.notify_all()
            return
        if self._idle < len(self._queue) and self._active + self._idle < self.limit:
            if self._seq == 0:
                self._register_exit()
            self._threads += 1
            self._idle += 1
            self._seq += 1
            t = threading.Thread(target=self._run, name=f"{self._name}_{self._seq}")
            t.start()
        self._cond.notify_all()

    # -- the threads --------------------------------------------------------------

    def _run(self) -> None:
        self._local.pool = self
        self._local.parked = False
        with self._cond:
            while True:
                deadline = time.monotonic() + IDLE_SECONDS
                while not self._can_start():
                    remaining = deadline - time.monotonic()
                    if self._shutdown or (self._exiting and not self._queue) or remaining <= 0:
                        self._idle -= 1
                        self._threads -= 1
                        return
                    self._cond.wait(remaining)
                fut, fn, args = self._queue.popleft()
                self._idle -= 1
                self._active += 1
                self._cond.release()
                try:
                    if fut.set_running_or_notify_cancel():
                        try:
                            result = fn(*args)
                        except BaseException as e:  # noqa: BLE001 - the future carries it
                            fut.set_exception(e)
                        else:
                            fut.set_result(result)
                    del fut, fn, args
                finally:
                    self._cond.acquire()
                    self._active -= 1
                    self._idle += 1
                    self._kick()

    # -- waiting --------------------------------------------------------------------

    def owns_thread(self) -> bool:
        """Is the calling thread one of this pool's?"""
        return getattr(self._local, "pool", None) is self

    def in_pool(self) -> bool:
        """Is the calling thread one of this pool's, holding its slot?"""
        return getattr(self._local, "pool", None) is self and not self._local.parked

    @contextlib.contextmanager
    def waiting(self) -> Iterator[bool]:
        """Give this thread's slot back while the block waits; yields whether
        it did (not for a thread of another pool, or one already waiting)."""
        if not self.in_pool():
            yield False
            return
        with self._cond:
            self._active -= 1
            self._local.parked = True
            self._kick()
        try:
            yield True
        finally:
            with self._cond:
                self._returning += 1
                try:
                    while self._active >= self.limit:
                        self._cond.wait()
                finally:
                    self._returning -= 1
                    self._active += 1
                    self._local.parked = False
                self._kick()

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {
                "threads": self._threads,
                "active": self._active,
                "idle": self._idle,
                "queued": len(self._queue),
            }
