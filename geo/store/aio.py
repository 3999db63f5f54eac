"""Reads of the store on the event loop, for the hottest requests.

A feature by id costs the database two short statements (the revisions, the feature the
store encodes); through the threadpool the hand-offs, the GIL passing between the loop and
the worker threads and the pool's bookkeeping cost ~1 ms of Python per request, several
times the statements. psycopg's asynchronous connections run them on the loop instead,
through libpq's pipeline (:class:`_Pipe`): one round trip, nothing for a thread to do.

The rest of the request still runs the ordinary, synchronous domain code, inside
:func:`geo.store.on_the_loop` with what was read here: anything that would need one more
statement (a registry to refresh after a write, a record to re-read) raises
:class:`geo.store.WouldBlock` before touching a connection, and the caller answers from the
threadpool as before. So this module only ever makes a request faster, never different.

One small pool per event loop and engine (the connections belong to the loop that opened
them), of ``CMM_GEO_DB_ASYNC_POOL_SIZE`` connections at most, connected as the engine's own
(same URL, options and ``statement_timeout``; the read replica's when configured). A
statement that stays silent past the engine's deadline, or any database error, closes its
connection and keeps this path off for a few seconds: the threadpool path then answers
(503 while the database is down).

On the embedded SQLite store a feature by id, a map's box and a short filter's page are
read here (:class:`SqliteReader`), each within a small budget: their reads cost less than
the thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from geo.settings import get_settings
from geo.store import REVISIONS_SQL, read_engine

log = logging.getLogger(__name__)

#: After a failure, the event loop's reads stay off this long (the threadpool answers).
COOLDOWN_S = 5.0

#: (SQL, its parameters or None) or (SQL, parameters, psycopg's ``prepare``); parameters
#: by name for psycopg, by position for SQLite.
Params = Mapping[str, Any] | Sequence[Any] | None
Statement = tuple[str, Params] | tuple[str, Params, bool | None]


class AsyncReader:
    """A few psycopg ``AsyncConnection`` of one engine, for one event loop."""

    def __init__(self, engine: Engine, size: int, deadline_s: float) -> None:
        _, params = engine.dialect.create_connect_args(engine.url)
        self.params = {**params, **engine.__dict__.get("cmm_connect_args", {})}
        self.deadline_s = deadline_s
        self._idle: list[_Pipe] = []
        self._slots = asyncio.Semaphore(size)
        self.down_until = 0.0

    async def fetch(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        """The rows of each statement, sent together (one round trip, a pipeline);
        those with parameters prepared by the server at once, unless the statement says
        otherwise (a third item: psycopg's ``prepare``, False for a statement PostgreSQL
        must plan for its values each time, None after a few runs)."""
        async with self._slots:
            try:
                pipe = self._idle.pop() if self._idle else await self._connect()
            except Exception:
                self.down_until = time.monotonic() + COOLDOWN_S
                raise
            healthy = False
            try:
                async with asyncio.timeout(self.deadline_s):
                    rows = await pipe.fetch(statements)
                healthy = True
                return rows
            except Exception as exc:  # not a cancel (the client left)
                if not _about_the_values(exc):  # the database's trouble: rest a while
                    self.down_until = time.monotonic() + COOLDOWN_S
                raise
            finally:
                if healthy and not pipe.conn.closed:
                    self._idle.append(pipe)
                else:  # its state is unknown (a timeout, a cancel, an error): not reused
                    await pipe.close()

    async def _connect(self) -> _Pipe:
        import psycopg

        async with asyncio.timeout(self.deadline_s):
            conn = await psycopg.AsyncConnection.connect(autocommit=True, **self.params)
        return _Pipe(conn)

    async def close(self) -> None:
        """Close the idle connections (tests, shutdown)."""
        while self._idle:
            await self._idle.pop().close()


#: psycopg's ``prepare=None``: a statement is prepared on its this-many-th run.
PREPARE_THRESHOLD = 5
#: Statements kept prepared per connection (the least recently used deallocated first).
PREPARED_MAX = 100


class _Pipe:
    """One connection of :class:`AsyncReader`, driven through libpq's pipeline mode.

    psycopg's cursors and pipeline cost ~0.35 ms of Python for the two statements of a
    page (generators, locks, one cursor each); the same round trip through its ``PGconn``
    and ``Transformer`` (both in C) costs ~0.15 ms: parameters dumped and rows loaded by
    the connection's own adapters, as a cursor would. The connection is this reader's
    alone, only ever idle between two fetches, so psycopg's own state stays true.

    Its socket is watched from its first wait to its close (:meth:`_ready`), not for each
    wait: registering a reader with the loop and removing it again costs uvloop a poll
    handle and two ``epoll_ctl`` calls a wait (a filtered page was 6 % slower)."""

    def __init__(self, conn: Any) -> None:
        from psycopg import pq
        from psycopg._queries import PostgresQuery
        from psycopg.adapt import Transformer

        self.query = PostgresQuery  # (psycopg is imported once a PostgreSQL reader connects)
        self.status = pq.ExecStatus
        self.conn = conn
        self.pg = conn.pgconn
        self.tx = Transformer(conn)
        #: (SQL, parameter types) → the name prepared on this connection, most recent last.
        self.prepared: OrderedDict[tuple[str, tuple[int, ...]], bytes] = OrderedDict()
        self.runs: dict[tuple[str, tuple[int, ...]], int] = {}
        self.serial = 0
        #: The loop watching the socket for reads (None: not watched) and the fetch
        #: waiting for them, if any.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._waiter: asyncio.Future[None] | None = None

    async def fetch(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        pg, status_of = self.pg, self.status
        pg.enter_pipeline_mode()
        for st in statements:
            sql, params = st[0], st[1]
            prepare = st[2] if len(st) > 2 else params is not None  # type: ignore[misc]
            q = self.query(self.tx)
            q.convert(sql, params)
            name = self._name(sql, q, prepare)
            if name is None:
                pg.send_query_params(q.query, q.params, q.types, q.formats)
            else:
                pg.send_query_prepared(name, q.params, q.formats)
        pg.pipeline_sync()
        await self._flush()
        out: list[list[tuple[Any, ...]]] = []
        error = None
        while True:
            while pg.is_busy():
                await self._readable()
                pg.consume_input()
            res = pg.get_result()
            if res is None:  # the end of one statement's results
                continue
            status = res.status
            if status == status_of.PIPELINE_SYNC:
                break
            if status == status_of.TUPLES_OK:
                self.tx.set_pgresult(res)
                out.append(self.tx.load_rows(0, res.ntuples, tuple))
            elif status != status_of.COMMAND_OK and error is None:  # a prepare, a deallocate
                error = res
        pg.exit_pipeline_mode()
        if error is not None:
            from psycopg.errors import error_from_result

            raise error_from_result(error, encoding=self.conn.info.encoding)
        return out

    def _name(self, sql: str, q: Any, prepare: bool | None) -> bytes | None:
        """The prepared statement to run ``sql`` (converted: ``q``) with, sent to the
        pipeline first when it is new; None to send it unnamed: planned for its values.
        (A statement without parameters is prepared only when asked: ``prepare`` True.)"""
        if prepare is False:
            return None
        key = (sql, tuple(q.types or ()))
        name = self.prepared.get(key)
        if name is not None:
            self.prepared.move_to_end(key)
            return name
        if prepare is None:  # as psycopg: prepared once it has run a few times
            runs = self.runs[key] = self.runs.get(key, 0) + 1
            if len(self.runs) > 4 * PREPARED_MAX:
                self.runs.clear()
            if runs < PREPARE_THRESHOLD:
                return None
        self.serial += 1
        name = f"cmm_{self.serial}".encode()
        pg = self.pg
        if len(self.prepared) >= PREPARED_MAX:
            _, old = self.prepared.popitem(last=False)
            pg.send_query_params(b"DEALLOCATE " + old, None)
        pg.send_prepare(name, q.query, param_types=q.types)
        self.prepared[key] = name
        return name

    async def _flush(self) -> None:
        while self.pg.flush():  # 1: more to send once the socket can take it
            await self._writable()

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._fd = self.pg.socket
            loop.add_reader(self._fd, self._ready)
            self._loop = loop
        self._waiter = done = loop.create_future()
        try:
            await done
        finally:
            self._waiter = None

    def _ready(self) -> None:
        """The socket is readable: wake the fetch waiting for it. With none waiting (a
        notice, the server closing while the connection is idle) read what came, so that
        the level-triggered poll does not call again; a connection that broke is no
        longer watched (its next fetch fails, and it is closed)."""
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            return
        try:
            self.pg.consume_input()
        except Exception:
            self._unwatch()

    def _unwatch(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            self._loop = None

    async def close(self) -> None:
        """Stop watching the socket (before its number can be reused), then close."""
        self._unwatch()
        with contextlib.suppress(Exception):
            await self.conn.close()

    async def _writable(self) -> None:
        """Wait until the socket can take more of a long pipeline (rare: its buffer is
        full), through a writer registered for this wait alone."""
        loop = asyncio.get_running_loop()
        fd = self.pg.socket
        done = loop.create_future()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_writer(fd, ready)
        try:
            await done
        finally:
            loop.remove_writer(fd)


def _about_the_values(exc: Exception) -> bool:
    """Whether the statement failed on what it was given (a filter's value out of range,
    a geometry GEOS refuses), not for want of a database: the threadpool then runs it
    again and answers the 400, and this path stays on for everyone else."""
    import psycopg

    return isinstance(exc, (psycopg.errors.DataError, psycopg.errors.InternalError_))


_readers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, AsyncReader | SqliteReader]
] = weakref.WeakKeyDictionary()


#: The most CPU time a read on the event loop may keep SQLite working before it is
#: interrupted and the request goes to a thread (where it is read again, without a limit):
#: a page of a map's box or of a short filter takes 0.1–1 ms; one that takes longer is not
#: the loop's. CPU time, not the clock's: a busy machine's preemption is not the query's.
SQLITE_LOOP_BUDGET_S = 0.002
#: How many of SQLite's VM instructions run between two looks at the clock (~0.1–0.3 ms;
#: every 2,000 the looks cost 5 % of a CQL2 page's Python).
SQLITE_PROGRESS_STEPS = 20_000
#: After a read (its statements' SQL) overran the budget, its next this-many go straight to a
#: thread (a kind of page that is always too long, a big layer's box, costs the loop one
#: try in this many, not one in each request); then it is tried on the loop again.
SQLITE_OVERRUN_SKIP = 32
#: Reads remembered as overrunning, at most (the least recent forgotten).
SQLITE_OVERRUN_KEPT = 64

#: Called with each new connection of a :class:`SqliteReader`: the user functions the
#: statements of the domain call (``geo.ogc.sql`` registers its own here).
SQLITE_FUNCTIONS: list[Callable[[sqlite3.Connection], None]] = []


class Interrupted(Exception):
    """A read on the event loop outlasted :data:`SQLITE_LOOP_BUDGET_S` and was stopped:
    nothing is wrong with the store, the request is read in a thread instead."""


class SqliteReader:
    """One connection to the embedded store's file, for one event loop, that only reads.

    A feature by id on SQLite is two indexed reads (the revisions, the row by primary key)
    of a few pages the OS keeps cached: ~30 µs, less than the hop to a thread and back
    (~0.3 ms of Python and GIL hand-offs), so they run on the loop itself; so do the pages
    of a map's box and of a short CQL2 filter (0.1–1 ms), each under a budget: SQLite's
    progress handler stops a statement past :data:`SQLITE_LOOP_BUDGET_S` and a thread reads
    it instead, so the loop never waits longer for one. The statements of one fetch read
    one snapshot (one read transaction: the revisions agree with the rows). The file is in
    WAL mode, where readers take no lock a writer holds; should one still have to wait
    (a checkpoint truncating the log, a recovery), ``busy_timeout`` 0 makes it fail at
    once and a thread answers instead."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.down_until = 0.0
        self._deadline = 0.0
        #: The SQL of a read's statements → how many more to send to a thread
        #: (SQLITE_OVERRUN_SKIP).
        self._overran: OrderedDict[tuple[str, ...], int] = OrderedDict()

    def _over_budget(self) -> bool:
        return time.thread_time() > self._deadline

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA query_only=ON")
        for install in SQLITE_FUNCTIONS:
            install(conn)
        conn.set_progress_handler(self._over_budget, SQLITE_PROGRESS_STEPS)
        return conn

    async def fetch(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        """The rows of each statement (parameters by position, as SQLite's driver takes
        them), read at once; :class:`Interrupted` past the budget."""
        kind = tuple(st[0] for st in statements)
        left = self._overran.get(kind)
        if left is not None:
            if left > 1:
                self._overran[kind] = left - 1
                raise Interrupted("this read overran the loop's budget lately")
            del self._overran[kind]  # tried on the loop again
        try:
            if self.conn is None:
                self.conn = self._connect()
            conn = self.conn
            self._deadline = time.thread_time() + SQLITE_LOOP_BUDGET_S
            if len(statements) == 1:
                return [conn.execute(statements[0][0], statements[0][1] or ()).fetchall()]
            conn.execute("BEGIN")
            try:
                rows = [conn.execute(st[0], st[1] or ()).fetchall() for st in statements]
            except BaseException:
                self._deadline = math.inf  # the ROLLBACK itself is not to be interrupted
                if conn.in_transaction:  # (an interrupt may have rolled it back already)
                    conn.execute("ROLLBACK")
                raise
            self._deadline = math.inf  # nor the COMMIT (a read: nothing to keep)
            conn.execute("COMMIT")
            return rows
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                self._overran[kind] = SQLITE_OVERRUN_SKIP
                self._overran.move_to_end(kind)
                while len(self._overran) > SQLITE_OVERRUN_KEPT:
                    self._overran.popitem(last=False)
                raise Interrupted(str(exc)) from None
            if not _locked(exc):
                self.down_until = time.monotonic() + COOLDOWN_S
                await self.close()
            raise
        except sqlite3.Error:  # the file's trouble (gone, corrupt, unreadable): rest
            self.down_until = time.monotonic() + COOLDOWN_S
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection (tests, shutdown)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def sqlite_file(engine: Engine) -> bool:
    """Whether the SQLite ``engine`` is a file (a :class:`SqliteReader` can open it), not a
    database in memory."""
    return engine.url.database not in (None, "", ":memory:")


def reader(engine: Engine) -> AsyncReader | SqliteReader | None:
    """The running loop's reader of ``engine`` (its read replica's when configured); None
    when the engine is neither PostgreSQL through psycopg nor a SQLite file, the path is
    turned off (``CMM_GEO_ASYNC_READS=false``) or resting after a failure."""
    settings = get_settings()
    if not settings.async_reads:
        return None
    engine = read_engine(engine)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite and not sqlite_file(engine):
        return None
    if not sqlite and engine.dialect.driver != "psycopg":
        return None
    loop = asyncio.get_running_loop()
    per_loop = _readers.setdefault(loop, {})
    got = per_loop.get(id(engine))
    if got is None:
        if sqlite:
            got = SqliteReader(str(engine.url.database))
        else:
            deadline = settings.request_timeout_s + max(1.0, settings.db_connect_timeout_s)
            got = AsyncReader(engine, settings.db_async_pool_size, deadline)
        per_loop[id(engine)] = got
    return None if time.monotonic() < got.down_until else got


async def close_loop_readers() -> None:
    """Close the running loop's connections (the application's shutdown)."""
    for r in _readers.pop(asyncio.get_running_loop(), {}).values():
        with contextlib.suppress(Exception):
            await r.close()


async def fetch(
    engine: Engine, statements: Sequence[Statement]
) -> list[list[tuple[Any, ...]]] | None:
    """The rows of each statement (``None`` parameters: a statement without any) read on the
    event loop in one round trip, or None when this path is not available (the caller
    reads in a thread instead)."""
    r = reader(engine)
    if r is None:
        return None
    try:
        return await r.fetch(statements)
    except Interrupted:
        return None  # too long for the loop: a thread reads it
    except Exception as exc:
        log.info("event-loop read failed, the threadpool answers: %s", str(exc)[:200])
        return None


async def fetch_with_revisions(
    engine: Engine,
    sql: str,
    params: Any,
    columns: int,
    prepare: bool | None = True,
) -> list[list[tuple[Any, ...]]] | None:
    """(the store's revisions as ``REVISIONS_SQL`` selects them, the rows of ``sql``) read
    on the event loop as **one** statement — the two unioned, the revisions' rows padded
    to ``sql``'s ``columns`` — which costs psycopg less than a pipeline of two (~0.3 ms of
    Python a request). Only for statements whose rows' order does not matter (one row, a
    count). None when this path is not available."""
    if engine.dialect.name == "sqlite":  # no round trips to save: the two, one after the other
        return await fetch(engine, [(REVISIONS_SQL, None), (sql, params)])
    revisions = REVISIONS_SQL.replace("SELECT key, value, updated_at", "", 1).replace("%", "%%")
    pad = ", NULL" * columns
    union = (
        f"SELECT key, value, updated_at{pad}{revisions} "
        f"UNION ALL SELECT NULL, NULL, NULL, s.* FROM ({sql}) AS s"
    )
    got = await fetch(engine, [(union, params, prepare)])
    if got is None:
        return None
    rows = got[0]
    return [[r[:3] for r in rows if r[0] is not None], [r[3:] for r in rows if r[0] is None]]
