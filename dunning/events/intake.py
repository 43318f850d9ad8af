"""Group commit for webhook intake: concurrent requests share one insert and one commit.

One transaction per request caps intake at the database's commit rate. Here each
request hands its event to a queue and waits; a few writer tasks each take
everything queued, store it with one multi-row ``INSERT … ON CONFLICT DO NOTHING``
(autocommit: the statement is the transaction), and answer every waiting request.
A request is answered only after its event is durable; the tasks that apply new
events are sent after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue as stdqueue
import threading

import psycopg

from dunning import queue
from dunning.events.store import INSERT_EVENTS_SQL, IncomingEvent, insert_params

log = logging.getLogger(__name__)

Waiter = tuple[IncomingEvent, "asyncio.Future[bool]"]


class DatabaseUnavailable(RuntimeError):
    """The event could not be stored; the processor should retry the delivery."""


class GroupCommitter:
    """Batches event inserts from concurrent requests."""

    def __init__(self, dsn: str, *, max_batch: int = 256, writers: int = 2) -> None:
        self._dsn = dsn
        self._max_batch = max_batch
        self._writers = writers
        self._queue: asyncio.Queue[Waiter] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._to_send: stdqueue.SimpleQueue[list[int] | None] = stdqueue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name="enqueue", daemon=True)

    async def start(self) -> None:
        self._sender.start()
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(self._writers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._to_send.put(None)
        await asyncio.to_thread(self._sender.join, 10)

    async def submit(self, event: IncomingEvent) -> bool:
        """Store ``event``; True if it was new, False if it was a duplicate."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))
        return await future

    async def _write_loop(self) -> None:
        conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True, connect_timeout=3
                    )
                new_ids = await self._insert(conn, batch)
            except (psycopg.Error, OSError) as exc:
                log.warning("storing %d webhook events failed: %s", len(batch), exc)
                if conn is not None:
                    await conn.close()
                conn = None
                for _, future in batch:
                    if not future.done():
                        future.set_exception(DatabaseUnavailable(str(exc)))
                continue
            if new_ids:
                self._to_send.put(new_ids)

    @staticmethod
    async def _insert(
        conn: psycopg.AsyncConnection[tuple[object, ...]], batch: list[Waiter]
    ) -> list[int]:
        cur = await conn.execute(INSERT_EVENTS_SQL, insert_params([event for event, _ in batch]))
        inserted = {str(event_id): int(str(pk)) for pk, event_id in await cur.fetchall()}
        new_ids = list(inserted.values())
        for event, future in batch:
            if not future.done():
                # Only the first request carrying a new event id reports it as new.
                future.set_result(inserted.pop(event.event_id, None) is not None)
        return new_ids

    def _send_loop(self) -> None:
        """Send new event ids to the workers, coalescing everything committed meanwhile
        into one message (up to 500 ids), so busy intake costs few broker round trips."""
        while True:
            first = self._to_send.get()
            if first is None:
                return
            ids = list(first)
            stop = False
            while len(ids) < 500:
                try:
                    more = self._to_send.get_nowait()
                except stdqueue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                ids.extend(more)
            try:
                queue.send_apply_events(ids)
            except Exception as exc:  # the sweeper re-sends unhandled events
                log.warning("could not send %d events to the workers: %s", len(ids), exc)
            if stop:
                return
