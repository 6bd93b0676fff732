"""Running the model off the event loop: one call per request, or micro-batches across requests.

Owns `Inference` (the interface the routes use), `DirectInference` (each request's images are one
`predict_batch` call in a worker thread) and `MicroBatcher` (images of concurrent requests are
queued; one worker thread takes up to `max_batch` of them, waiting at most `max_wait_ms` for more
when the queue runs dry, runs one `predict_batch` and routes each result back to its request).

Which one a server uses is `ServerSettings.micro_batching`: direct by default, as measured on a
2-core CPU with efficientnet_lite0 (the numbers are in `ServerSettings`; benchmarks/bench_serve.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

PredictBatch = Callable[[Sequence[Any]], list[Any]]  # images -> predictions, in order


class Inference(Protocol):
    """What the routes call: predictions for a request's decoded images, without blocking the loop."""

    async def predict(self, images: Sequence[Any]) -> list[Any]: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class DirectInference:
    """Each request's images are one `predict_batch` call on a pool of `threads` threads."""

    # Two threads: one per core of a small machine; with 8 concurrent clients 2 threads served
    # 29-31 req/s against 22-28 for one (benchmarks/bench_serve.py).
    def __init__(self, predict_batch: PredictBatch, threads: int = 2,
                 on_batch: Callable[[int], None] | None = None):
        self._predict_batch, self._threads, self._on_batch = predict_batch, threads, on_batch
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="pixclass-infer")

    async def stop(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def predict(self, images: Sequence[Any]) -> list[Any]:
        assert self._pool is not None, "start() the inference first"
        if self._on_batch:
            self._on_batch(len(images))
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._predict_batch, list(images))


@dataclass
class _Item:
    image: Any
    future: asyncio.Future


class MicroBatcher:
    """Concurrent requests' images share forward passes: up to `max_batch` images per call.

    The worker takes what is queued; when that is less than `max_batch` it waits at most
    `max_wait_ms` for more, then runs the batch in its one thread. While a batch runs, new images
    queue up, so under load batches fill without waiting; a lone request waits `max_wait_ms`.
    """

    def __init__(self, predict_batch: PredictBatch, max_batch: int, max_wait_ms: float,
                 on_batch: Callable[[int], None] | None = None):
        self._predict_batch, self._max_batch = predict_batch, max_batch
        self._max_wait = max_wait_ms / 1000
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pixclass-batch")
        self._task = asyncio.create_task(self._run(), name="pixclass-micro-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def predict(self, images: Sequence[Any]) -> list[Any]:
        assert self._queue is not None, "start() the batcher first"
        loop = asyncio.get_running_loop()
        items = [_Item(img, loop.create_future()) for img in images]
        for item in items:
            self._queue.put_nowait(item)
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        finally:  # a timed-out or failed request: its images still queued are dropped
            for i in items:
                i.future.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._take()
            if not batch:
                continue
            if self._on_batch:
                self._on_batch(len(batch))
            try:
                results = await loop.run_in_executor(self._pool, self._predict_batch, [i.image for i in batch])
            except Exception as err:  # the model failed: every request in the batch gets the error
                for i in batch:
                    if not i.future.done():
                        i.future.set_exception(err)
                continue
            for i, result in zip(batch, results):
                if not i.future.done():
                    i.future.set_result(result)

    async def _take(self) -> list[_Item]:
        """Up to `max_batch` live items: what is queued, then what arrives within `max_wait`."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self._max_wait
        while len(batch) < self._max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:  # TimeoutError from 3.11 on
                break
        return [i for i in batch if not i.future.done()]  # cancelled requests' images are skipped
