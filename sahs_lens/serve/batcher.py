"""Dynamic batching: concurrent requests share one prefill, and a full queue says 503 instead of growing.

Requests arrive on the server's event loop; the model runs on one worker thread (a model runs one forward
at a time: ``model_adapters.concurrency``). ``Batcher.submit`` puts a request's items on a queue and
returns a future. The worker takes the oldest request, then waits at most ``max_wait_s`` for more until
``max_batch`` items are gathered, judges them all with one call (``judge``: e.g. ``guard.classify`` on one
prefill per ``max_batch`` prompts), and hands each request its own verdicts, in order. If the shared call
fails, each request of the batch is judged alone, so one bad request fails only itself.

The queue is bounded in items (``max_queue``): past it ``submit`` raises ``QueueFull`` at once, which the
server answers with 503 and ``Retry-After``, so load beyond capacity costs the clients a retry, not the
server its memory.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Batcher", "QueueFull"]

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` items already: the server answers 503."""


@dataclass
class _Request(Generic[T, R]):
    items: Sequence[T]
    future: Future[list[R]] = field(default_factory=Future)


class Batcher(Generic[T, R]):
    """Batches ``judge(items) -> results`` (one result per item, in order) over concurrent ``submit`` calls."""

    def __init__(
        self,
        judge: Callable[[list[T]], list[R]],
        *,
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch and max_queue must be >= 1 and max_wait_s >= 0; got {max_batch}, "
                             f"{max_queue}, {max_wait_s}")  # fmt: skip
        self.judge, self.max_batch, self.max_wait_s, self.max_queue = judge, max_batch, max_wait_s, max_queue
        self._queue: deque[_Request[T, R]] = deque()
        self._queued_items = 0
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0  # shared calls made (for /health and the load test)
        self._worker = threading.Thread(target=self._run, name="sahs-lens-batcher", daemon=True)
        self._worker.start()

    @property
    def queued(self) -> int:
        """Items waiting (not yet taken by the worker)."""
        return self._queued_items

    def submit(self, items: Sequence[T]) -> Future[list[R]]:
        """Queue ``items``; a future of their results. ``QueueFull`` if the queue has no room for them."""
        request: _Request[T, R] = _Request(list(items))
        with self._ready:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if self._queued_items + len(items) > self.max_queue:
                raise QueueFull(f"{self._queued_items} items are queued (at most {self.max_queue})")
            self._queue.append(request)
            self._queued_items += len(items)
            self._ready.notify()
        return request.future

    def close(self) -> None:
        """Stop the worker once the queue is empty (requests still queued are judged first)."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._worker.join(timeout=60)

    def _take(self) -> list[_Request[T, R]] | None:
        """The next batch: the oldest request plus whatever arrives within ``max_wait_s``, up to ``max_batch``."""
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            taken = [self._queue.popleft()]
            count = len(taken[0].items)
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_batch:
                if self._queue and count + len(self._queue[0].items) <= self.max_batch:
                    taken.append(self._queue.popleft())
                    count += len(taken[-1].items)
                    continue
                left = deadline - time.monotonic()
                if self._queue or left <= 0:  # the next one does not fit, or the wait is over
                    break
                self._ready.wait(timeout=left)
            self._queued_items -= count
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            self.batches += 1
            # a request whose caller stopped waiting (its future cancelled) is dropped, never judged
            live = [request for request in taken if request.future.set_running_or_notify_cancel()]
            try:
                self._judge_all(live)
            except Exception:  # never let the worker die: every live request gets an answer or an error
                for request in live:
                    _settle(request.future, error=RuntimeError("the batch could not be judged"))

    def _judge_all(self, live: list[_Request[T, R]]) -> None:
        if not live:
            return
        try:
            results = self.judge([item for request in live for item in request.items])
        except Exception:  # judged one by one below, so that only the request at fault fails
            results = None
        if results is not None:
            start = 0
            for request in live:
                _settle(request.future, result=results[start : start + len(request.items)])
                start += len(request.items)
            return
        for request in live:
            try:
                _settle(request.future, result=self.judge(list(request.items)))
            except Exception as error:
                _settle(request.future, error=error)


def _settle(
    future: Future[list[R]], *, result: list[R] | None = None, error: BaseException | None = None
) -> None:
    """Resolve ``future`` unless it already is (cancelled meanwhile): the worker must never raise here."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result if result is not None else [])
    except InvalidStateError:
        pass
