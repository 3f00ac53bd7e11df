"""service/pipeline.cancel_on_disconnect with http/route.client_gone: a hang-up cancels the work
at once, a finished job answers, and the connection is watched by one waiting receive(), not polled.
(tests/reliability/test_disconnect.py hangs up real sockets on a real server.)"""

import asyncio

import pytest

from pixelserve.http.route import client_gone
from pixelserve.errors import Cancelled
from pixelserve.service.pipeline import cancel_on_disconnect


class FakeRequest:
    """An ASGI receive channel: the body, then ``http.disconnect`` once ``hang_up`` is set."""

    def __init__(self):
        self.hang_up = asyncio.Event()
        self.receives = 0

    async def receive(self):
        self.receives += 1
        if self.receives == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.hang_up.wait()
        return {"type": "http.disconnect"}


def test_finished_work_answers_and_the_channel_was_awaited_not_polled():
    async def go():
        request = FakeRequest()
        result = await cancel_on_disconnect(client_gone(request), asyncio.sleep(0.6, result="done"))
        return result, request.receives

    result, receives = asyncio.run(go())
    assert result == "done"
    assert receives == 2  # the body message, then one receive() waiting the whole 0.6 s


def test_a_hang_up_cancels_the_work_at_once():
    async def go():
        request = FakeRequest()
        cancelled = asyncio.Event()

        async def work():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        loop = asyncio.get_running_loop()
        loop.call_later(0.05, request.hang_up.set)
        started = loop.time()
        with pytest.raises(Cancelled):
            await cancel_on_disconnect(client_gone(request), work())
        return cancelled.is_set(), loop.time() - started

    was_cancelled, took = asyncio.run(go())
    assert was_cancelled and took < 5


def test_a_failing_job_raises_its_own_error():
    async def go():
        async def work():
            raise ValueError("bad")

        with pytest.raises(ValueError, match="bad"):
            await cancel_on_disconnect(client_gone(FakeRequest()), work())

    asyncio.run(go())
