"""Group commit for webhook intake: concurrent requests share one insert and one commit.

One transaction per request caps intake at the database's commit rate. Here each
request hands its event to a queue and waits; a few writer tasks each take
everything queued, store it with one multi-row ``INSERT … ON CONFLICT DO NOTHING``
(autocommit: the statement is the transaction), and answer every waiting request.
A request is answered only after its event is durable; the tasks that apply new
events are sent after that commit.

Nothing here may end intake silently: a writer survives any exception (the batch's
requests get an error, the writer goes on), a request waits at most ``deadline_seconds``
(then 503, so the processor retries), and ``health()`` tells ``/healthz`` when a writer
has stopped or requests are waiting too long.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue as stdqueue
import threading
import time

import psycopg

from dunning import queue
from dunning.events.store import INSERT_EVENTS_SQL, IncomingEvent, insert_params

log = logging.getLogger(__name__)

Waiter = tuple[IncomingEvent, "asyncio.Future[bool]"]
Connection = psycopg.AsyncConnection[tuple[object, ...]]

# Errors that say the connection or the server is gone, not that the batch is bad.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError, TimeoutError)
# Errors that say some value in the batch cannot be stored: retrying will not help.
_DATA_ERRORS = (psycopg.DataError, UnicodeError, ValueError, OverflowError)


class DatabaseUnavailable(RuntimeError):
    """The event could not be stored; the processor should retry the delivery."""


class UnstorableEvent(ValueError):
    """This event can never be stored (a value the table cannot hold)."""


class GroupCommitter:
    """Batches event inserts from concurrent requests."""

    deadline_seconds: float = 8.0
    """How long a request waits for its commit: the 503 must come before the processor's
    own delivery timeout, so the delivery is retried rather than left in doubt."""
    connect_timeout: int = 3
    linger_seconds: float = 0.05
    """How long the first new event waits for others to share its task message."""

    def __init__(self, dsn: str, *, max_batch: int = 256, writers: int = 2) -> None:
        self._dsn = dsn
        self._max_batch = max_batch
        self._writers = writers
        self._queue: asyncio.Queue[Waiter] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[int, float] = {}  # request number -> when it was submitted
        self._numbers = itertools.count()
        self._to_send: stdqueue.SimpleQueue[list[int] | None] = stdqueue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name="enqueue", daemon=True)

    async def start(self) -> None:
        self._sender.start()
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(self._writers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._to_send.put(None)
        await asyncio.to_thread(self._sender.join, 10)

    def health(self) -> str:
        """``ok``, or why intake cannot store events now (``/healthz`` answers 503)."""
        if not self._tasks or not self._sender.is_alive():
            return "stopped"
        if any(task.done() for task in self._tasks):
            return "writer stopped"
        if self._waiting:
            oldest = time.monotonic() - min(self._waiting.values())
            if oldest > self.deadline_seconds / 2:
                return f"stuck: a request has waited {oldest:.1f} s"
        return "ok"

    async def submit(self, event: IncomingEvent) -> bool:
        """Store ``event``; True if it was new, False if it was a duplicate.

        Raises ``DatabaseUnavailable`` when it is not stored within the deadline and
        ``UnstorableEvent`` when the database refuses its values.
        """
        if not self._tasks or all(task.done() for task in self._tasks):
            raise DatabaseUnavailable("no event writer is running")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        number = next(self._numbers)
        self._waiting[number] = time.monotonic()
        self._queue.put_nowait((event, future))
        try:
            async with asyncio.timeout(self.deadline_seconds):
                return await future
        except TimeoutError:
            # The writer skips the cancelled future; if the row lands later, the
            # processor's retry is answered as a duplicate.
            raise DatabaseUnavailable(f"not stored within {self.deadline_seconds} s") from None
        finally:
            del self._waiting[number]

    async def _next_batch(self) -> list[Waiter]:
        batch = [await self._queue.get()]
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write_loop(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                batch = await self._next_batch()
                try:
                    conn = await self._store(conn, batch)
                except asyncio.CancelledError:
                    _fail(batch, DatabaseUnavailable, "intake is shutting down")
                    raise
                except Exception as exc:  # a writer must never end on a bad batch
                    log.exception("storing %d webhook events failed", len(batch))
                    await _discard(conn)
                    conn = None
                    _fail(batch, DatabaseUnavailable, f"{type(exc).__name__}: {exc}")
        finally:
            await _discard(conn)

    async def _store(self, conn: Connection | None, batch: list[Waiter]) -> Connection | None:
        """Insert ``batch``; on a value the table refuses, insert its events one by one so
        only the bad one fails. Returns the connection to reuse (None when it broke)."""
        batch = [(event, future) for event, future in batch if not future.done()]
        if not batch:
            return conn
        try:
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=self.connect_timeout
                )
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the insert finishes, and stop() would wait forever.
            async with asyncio.timeout(self.deadline_seconds):
                new_ids = await self._insert(conn, batch)
        except _CONNECTION_ERRORS as exc:
            log.warning("storing %d webhook events failed: %s", len(batch), exc)
            _fail(batch, DatabaseUnavailable, str(exc) or type(exc).__name__)
            await _discard(conn)
            return None
        except _DATA_ERRORS as exc:
            if len(batch) == 1:
                log.warning("refused webhook event %r: %s", batch[0][0].event_id[:80], exc)
                _fail(batch, UnstorableEvent, str(exc))
                return conn
            for i, waiter in enumerate(batch):
                conn = await self._store(conn, [waiter])
                if conn is None:  # the connection broke: do not reconnect once per event
                    _fail(batch[i + 1 :], DatabaseUnavailable, "connection lost")
                    break
            return conn
        if new_ids:
            self._to_send.put(new_ids)
        return conn

    @staticmethod
    async def _insert(conn: Connection, batch: list[Waiter]) -> list[int]:
        cur = await conn.execute(INSERT_EVENTS_SQL, insert_params([event for event, _ in batch]))
        inserted = {str(event_id): int(str(pk)) for pk, event_id in await cur.fetchall()}
        new_ids = list(inserted.values())
        for event, future in batch:
            if not future.done():
                # Only the first request carrying a new event id reports it as new.
                future.set_result(inserted.pop(event.event_id, None) is not None)
        return new_ids

    def _send_loop(self) -> None:
        """Send new event ids to the workers, coalescing everything committed within
        ``linger_seconds`` into one message (up to 500 ids): busy intake costs few broker
        round trips, and the workers few transactions (a batch costs about the same few
        statements whatever its size)."""
        while True:
            first = self._to_send.get()
            if first is None:
                return
            ids = list(first)
            stop = False
            until = time.monotonic() + self.linger_seconds
            while len(ids) < 500:
                try:
                    more = self._to_send.get(timeout=max(until - time.monotonic(), 0))
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


def _fail(batch: list[Waiter], error: type[Exception], message: str) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error(message))


async def _discard(conn: Connection | None) -> None:
    """Close a connection that may be broken; never raises."""
    if conn is not None:
        try:
            async with asyncio.timeout(2):
                await conn.close()
        except Exception:
            log.debug("closing a broken connection failed", exc_info=True)
