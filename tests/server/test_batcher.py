"""The micro-batcher: every image's result goes back to its own request, batches never exceed
`max_batch`, and a failing model call fails only the requests in that batch."""

from __future__ import annotations

import asyncio

import pytest

from pixclass.server.batcher import DirectInference, MicroBatcher

pytestmark = pytest.mark.anyio


def doubling(calls: list[list[int]]):
    def predict_batch(images):
        calls.append(list(images))
        return [2 * x for x in images]
    return predict_batch


async def test_concurrent_requests_get_their_own_results_in_batches_of_at_most_max_batch():
    calls: list[list[int]] = []
    batcher = MicroBatcher(doubling(calls), max_batch=4, max_wait_ms=5)
    await batcher.start()
    try:
        requests = [[i * 10 + j for j in range(i % 3 + 1)] for i in range(12)]
        answers = await asyncio.gather(*(batcher.predict(r) for r in requests))
    finally:
        await batcher.stop()

    assert answers == [[2 * x for x in r] for r in requests]
    assert all(1 <= len(c) <= 4 for c in calls)
    assert sorted(x for c in calls for x in c) == sorted(x for r in requests for x in r)


async def test_a_failing_model_call_raises_in_its_requests_and_the_batcher_goes_on():
    def flaky(images):
        if -1 in images:
            raise RuntimeError("model exploded")
        return [2 * x for x in images]

    batcher = MicroBatcher(flaky, max_batch=1, max_wait_ms=0)
    await batcher.start()
    try:
        with pytest.raises(RuntimeError, match="model exploded"):
            await batcher.predict([-1])
        after = await batcher.predict([3])
    finally:
        await batcher.stop()

    assert after == [6]


async def test_a_cancelled_requests_images_are_not_predicted():
    calls: list[list[int]] = []
    batcher = MicroBatcher(doubling(calls), max_batch=1, max_wait_ms=0)
    await batcher.start()
    try:
        first = asyncio.ensure_future(batcher.predict([1]))
        doomed = asyncio.ensure_future(batcher.predict([2]))
        await asyncio.sleep(0)
        doomed.cancel()
        assert await first == [2]
        assert await batcher.predict([3]) == [6]
    finally:
        await batcher.stop()

    assert [2] not in calls


async def test_direct_inference_predicts_each_request_in_one_call():
    calls: list[list[int]] = []
    direct = DirectInference(doubling(calls), threads=2)
    await direct.start()
    try:
        answers = await asyncio.gather(direct.predict([1, 2]), direct.predict([3]))
    finally:
        await direct.stop()

    assert answers == [[2, 4], [6]]
    assert sorted(calls) == [[1, 2], [3]]
