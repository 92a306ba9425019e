"""Run the network once for the faces of several concurrent requests (dynamic batching)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import torch
from torch import Tensor


class MicroBatcher:
    """Collect the face batches that request threads submit, run ``network`` on up to ``max_batch`` faces
    at once (waiting at most ``timeout`` seconds after the first for more), and hand each caller its rows.

    ``batcher(batch)`` blocks the calling thread until its rows are ready; an error in the network is
    raised in every caller of that run. ``close()`` stops the background thread.
    """

    def __init__(self, network: Callable[[Tensor], np.ndarray], max_batch: int = 16, timeout: float = 0.005):
        if max_batch < 1 or timeout < 0:
            raise ValueError(f"need max_batch >= 1 and timeout >= 0, got {max_batch} and {timeout}")
        self.network, self.max_batch, self.timeout = network, max_batch, timeout
        self.runs = 0  # how many times the network ran, and on how many faces in all
        self.faces = 0
        self._queue: queue.Queue[tuple[Tensor, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="smile-batcher", daemon=True)
        self._thread.start()

    def __call__(self, batch: Tensor) -> np.ndarray:
        if len(batch) == 0:
            return self.network(batch)
        future: Future = Future()
        self._queue.put((batch, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            items, size = [item], len(item[0])
            deadline = time.monotonic() + self.timeout
            while size < self.max_batch:
                try:
                    more = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this run, then stop
                    break
                items.append(more)
                size += len(more[0])
            self._run(items)

    def _run(self, items: list[tuple[Tensor, Future]]) -> None:
        try:
            rows = self.network(torch.cat([batch for batch, _ in items]))
        except BaseException as err:  # every waiting request gets the error, the thread goes on
            for _, future in items:
                future.set_exception(err)
            return
        self.runs += 1
        self.faces += len(rows)
        start = 0
        for batch, future in items:
            future.set_result(rows[start : start + len(batch)])
            start += len(batch)
