"""A bounded pool of workers whose results stream back to one consumer thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def run_parallel(tasks: Sequence[Callable[[], Iterator[T]]], *, workers: int) -> Iterator[T]:
    """Run each task (a function returning an iterator) on at most ``workers`` threads.

    Items are yielded as they arrive; a small buffer keeps memory bounded (workers wait while the
    consumer is busy). The first error of any task is re-raised here and stops the others.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield from task()
        return
    results: queue.Queue[object] = queue.Queue(maxsize=workers * 2)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work(task: Callable[[], Iterator[T]]) -> None:
        try:
            for item in task():
                if stop.is_set():
                    return
                put((item,))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
        finally:
            put(_DONE)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-sync") as pool:
        for task in tasks:
            pool.submit(work, task)
        remaining = len(tasks)
        try:
            while remaining:
                item = results.get()
                if item is _DONE:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item[0]  # type: ignore[index]
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
