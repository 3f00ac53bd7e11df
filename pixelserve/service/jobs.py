"""A durable job queue: the queue is the database, this only runs what it holds.

Jobs are rows (Studio: ``studio_jobs``) created PENDING in the same transaction as everything
they pay for. ``JobRunner`` runs them in the background with a few workers. At start it puts
jobs that a stopped server left IN_PROGRESS back to PENDING and queues every PENDING one, so an
accepted job finishes even across a restart. At stop, running jobs are cancelled and stay
IN_PROGRESS in the database (``stopping`` tells the job function not to record a failure).

Several API replicas may share one database (PostgreSQL): a claimed job is held on a lease that
its replica renews (``heartbeat``) while it runs it. A replica that dies stops renewing; when the
lease has lapsed, an idle worker of any replica takes the job over (``run_next``, which also picks
up jobs queued on a busier replica). At start, only IN_PROGRESS jobs whose lease has ended count
as interrupted. Claiming is atomic (a conditional UPDATE), so a job is never run twice at once.
On SIGTERM the runner stops taking jobs and running ones get the drain time to finish.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from pixelserve.errors import Overloaded

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, run: Callable[[str], Awaitable[None]], requeue: Callable[[], list[str]], *,
                 workers: int = 1, is_ready: Callable[[], bool] = lambda: True, poll_seconds: float = 0.1,
                 run_next: Callable[[], Awaitable[bool]] | None = None, heartbeat: Callable[[], object] | None = None,
                 sweep_seconds: float = 15.0, capacity: int = 0):
        """``run(job_id)`` runs one job (claiming it first); ``requeue()`` returns the ids to resume.

        ``run_next()`` claims and runs any job no replica runs (False: none); an idle worker calls
        it every ``sweep_seconds``, when ``heartbeat()`` (renewing this replica's leases) runs too.
        ``capacity``: jobs waiting at most before ``check_capacity`` refuses new ones (0: no bound).
        """
        self.capacity = capacity
        self._run = run
        self._requeue = requeue
        self._workers = workers
        self._is_ready = is_ready
        self._poll = poll_seconds
        self._run_next = run_next
        self._heartbeat = heartbeat
        self._sweep = sweep_seconds
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._now: set[asyncio.Task] = set()  # run_now's
        self._running = 0  # jobs being run now
        self._closing = False  # stopping: no new job is started
        self.stopping = False

    async def start(self) -> None:
        self.stopping = self._closing = False
        for job_id in await asyncio.to_thread(self._requeue):
            self._queue.put_nowait(job_id)
        self._tasks = [asyncio.create_task(self._worker(), name=f"studio-jobs-{i}") for i in range(self._workers)]
        if self._heartbeat is not None:
            self._tasks.append(asyncio.create_task(self._beat(), name="studio-jobs-heartbeat"))

    def enqueue(self, job_id: str) -> None:
        self._queue.put_nowait(job_id)

    def run_now(self, job_id: str) -> None:
        """Runs a job at once, beside the workers: a cancelled one (Pipeline.cancel), which ends before
        its engine stage. A job already taken (by a worker, another replica) is left alone by ``run``."""
        task = asyncio.create_task(self._run_logged(job_id), name=f"studio-job-now-{job_id}")
        self._now.add(task)
        task.add_done_callback(self._now.discard)

    async def _run_logged(self, job_id: str) -> None:
        try:
            await self._run(job_id)
        except Exception:  # recorded on the job by run()
            log.info("studio job %s ended early", job_id, exc_info=True)

    def pending(self) -> int:
        return self._queue.qsize()

    def check_capacity(self) -> None:
        """Raises Overloaded (503, Retry-After) when ``capacity`` jobs already wait: call it before
        accepting (and charging for) a new background job, so the backlog stays bounded."""
        if self.capacity and self.pending() >= self.capacity:
            raise Overloaded(f"{self.pending()} background jobs are waiting; retry later")

    async def stop(self, grace_s: float = 0.0) -> None:
        """Start no new job; give running ones ``grace_s`` to finish, then cancel them (they stay
        IN_PROGRESS and resume at the next start)."""
        self._closing = True
        deadline = asyncio.get_running_loop().time() + grace_s
        while self._running and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        self.stopping = True
        for task in [*self._tasks, *self._now]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._now, return_exceptions=True)
        self._tasks = []

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._sweep)
            try:
                await asyncio.to_thread(self._heartbeat)
            except Exception:  # the database is briefly away: the next beat renews in time
                log.warning("renewing job leases failed", exc_info=True)

    async def _worker(self) -> None:
        while True:
            try:
                job_id = await asyncio.wait_for(self._queue.get(), self._sweep if self._run_next else None)
            except asyncio.TimeoutError:
                job_id = None  # idle: look for a job no replica runs
            while not self._is_ready() or self._closing:  # loading: the job waits; stopping: it stays PENDING
                await asyncio.sleep(self._poll)
            self._running += 1
            try:
                if job_id is None:
                    await self._run_next()
                else:
                    await self._run(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # recorded on the job by run(); the worker goes on
                log.info("studio job %s failed", job_id, exc_info=True)
            finally:
                self._running -= 1
