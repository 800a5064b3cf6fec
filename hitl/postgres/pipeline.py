"""A hot path's statements in one round trip, straight through libpq's pipeline mode.

psycopg's cursors and its ``Connection.pipeline()`` manage results, prepared statements and
transactions for any use; on the claim and the review that bookkeeping cost more of the web
process's CPU than the statements it sent (a review's three round trips: about 550 us of its
700, bench/README.md). Here the same library's lower layers do only what these statements
need: :class:`psycopg.adapt.Transformer` turns parameters into their text form and result
rows into Python values with the connection's own adapters (so the rows are those a Django
cursor returns), and :mod:`psycopg.pq` sends each statement, prepared once per connection
under a name of ours, in one pipeline ending with a Sync. The connection stays non-blocking,
as psycopg keeps it: waits for the socket are ``poll`` calls, during which other threads run.

Parameters go as text of no declared type: PostgreSQL infers each one's type from the
statement once, at its prepare (a value psycopg would dump as ``int2`` or ``int8`` by its
size does not change the statement). SQL is written as for a psycopg cursor (``%s`` or
``%(name)s``; a name used twice is one parameter). Used through
``hitl.postgres.base.DatabaseWrapper.hitl_pipeline``, which adds the scope, ``BEGIN`` and
``COMMIT`` and turns errors into Django's.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import select
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from types import SimpleNamespace

from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import AdaptersMap, PyFormat, Transformer
from psycopg.types.datetime import TimestamptzLoader

_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?s|%%")
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
_TEXT = PyFormat.TEXT
_TIMESTAMPTZ_OID = 1184


@lru_cache(maxsize=512)
def converted(sql: str) -> tuple[bytes, tuple[str, ...] | int]:
    """``sql`` with ``$n`` placeholders, and what fills them: the names in order (named
    parameters, each once), or how many positional ones."""
    names: list[str] = []
    positional = 0

    def replace(match: re.Match) -> str:
        nonlocal positional
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            positional += 1
            return f"${positional}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _PLACEHOLDER.sub(replace, sql)
    if names and positional:
        raise ValueError("a statement's parameters are all named or all positional")
    return text.encode(), (tuple(names) if names else positional)


class Session:
    """What one database connection keeps between pipelines: its statements' names, its transformer."""

    _names = itertools.count(1)

    def __init__(self, connection):
        self.connection = connection
        self.transformer = Transformer(_context(connection))
        self.prepared: dict[str, bytes] = {}
        self.rowcounts: list[int] = []  # of the last run's statements: rows each wrote or read


def _context(connection):
    """The connection's adapters, with psycopg's own loader of ``timestamptz`` (compiled, in
    psycopg's binary package) where Django's would hand back the same values: Django's loader
    (``psycopg_any.register_tzloader``) is written in Python and puts its time zone on each
    value, 17 times slower, the largest item of reading a claimed task's row. It is the same
    value when Django's zone is UTC and so is the session's, which psycopg's loader uses."""
    loader = connection.adapters.get_loader(_TIMESTAMPTZ_OID, pq.Format.TEXT)
    zone = getattr(loader, "timezone", None)
    session_zone = connection.pgconn.parameter_status(b"TimeZone")
    if zone is None or zone.utcoffset(None) != timedelta(0) or session_zone not in (b"UTC", b"Etc/UTC"):
        return connection
    adapters = AdaptersMap(connection.adapters)
    adapters.register_loader("timestamptz", TimestamptzLoader)  # (psycopg registers its compiled twin)
    return SimpleNamespace(adapters=adapters, connection=connection)


def forget_with_psycopg(session: Session) -> None:
    """Forget the session's statements whenever psycopg deallocates every prepared statement
    of the connection (``DEALLOCATE ALL``: it does after any ``ROLLBACK``, ``ROLLBACK TO
    SAVEPOINT``, ``DROP`` or ``ALTER`` when it has statements of its own prepared), so that the
    next pipeline prepares them again. psycopg's prepared-statement manager has no public hook
    for it: its ``clear`` (which returns True when it queued that ``DEALLOCATE ALL``) is wrapped
    on this connection; tests/hitl/test_pipeline.py fails if psycopg changes it."""
    manager = session.connection._prepared
    clear = manager.clear

    def clear_both() -> bool:
        deallocating = clear()
        if deallocating:
            session.prepared.clear()
        return deallocating

    manager.clear = clear_both


def _values(params, fills) -> list:
    if isinstance(fills, tuple):
        if not isinstance(params, Mapping):
            raise TypeError("named parameters need a mapping")
        return [params[name] for name in fills]
    values = list(params or ())
    if len(values) != fills:
        raise TypeError(f"the statement has {fills} parameters, {len(values)} given")
    return values


def run(session: Session, statements: Sequence[tuple[str, object]], wanted: range | None = None) -> list[list[tuple]]:
    """Send ``(sql, params)`` statements (``params`` None for none) in one pipeline and Sync;
    return each one's rows: those of the statements in ``wanted`` (positions; all by default),
    an empty list for the others, whose rows nobody reads (a scope's ``set_config``, an advisory
    lock's void) and are not converted to Python. The first error the server reports is raised (psycopg's class for
    its SQLSTATE), once every result of the pipeline is read; the statements after it did not
    run. ``BEGIN`` and ``COMMIT`` may be among the statements (sent unprepared)."""
    connection = session.connection
    pgconn = connection.pgconn
    if pgconn.pipeline_status != pq.PipelineStatus.OFF:
        raise RuntimeError("a psycopg pipeline is open on this connection")
    session.rowcounts = []  # (as they stand if the round trip fails: none went through)
    transformer = session.transformer
    plan = []  # (sql, text, name or None: prepare it, or b"": unprepared, dumped values)
    for sql, params in statements:
        text, fills = converted(sql)
        values = _values(params, fills)
        dumped = transformer.dump_sequence(values, [_TEXT] * len(values)) if values else None
        if not values and text in (b"BEGIN", b"COMMIT", b"ROLLBACK"):
            plan.append((sql, text, b"", None))
        else:
            plan.append((sql, text, session.prepared.get(sql), dumped))
    pgconn.enter_pipeline_mode()  # (libpq's failures come as psycopg's OperationalError)
    try:
        expected = []  # per result: (sql, name) of a prepare, else None
        for sql, text, name, dumped in plan:
            if name == b"":
                pgconn.send_query_params(text, None)
            elif name is None:
                name = f"hitl_{next(Session._names)}".encode()
                pgconn.send_prepare(name, text)
                expected.append((sql, name))
                pgconn.send_query_prepared(name, dumped)
            else:
                pgconn.send_query_prepared(name, dumped)
            expected.append(None)
        pgconn.pipeline_sync()
        _flush(pgconn)
        results = _read(pgconn, len(expected))
    except BaseException:
        with contextlib.suppress(pg_errors.Error):  # as far as the connection allows; the error says why
            pgconn.exit_pipeline_mode()
        raise
    pgconn.exit_pipeline_mode()
    error = None
    rows = []
    session.rowcounts = rowcounts = []
    if wanted is None:
        wanted = range(len(plan))
    for prepared, result in zip(expected, results, strict=True):
        status = result.status
        if prepared is not None:
            if status == pq.ExecStatus.COMMAND_OK:
                session.prepared[prepared[0]] = prepared[1]
            elif error is None and status == pq.ExecStatus.FATAL_ERROR:
                error = pg_errors.error_from_result(result, encoding=connection.info.encoding)
            continue
        if status in _OK:
            if error is None:
                if result.ntuples and len(rows) in wanted:
                    transformer.set_pgresult(result)
                    rows.append(transformer.load_rows(0, result.ntuples, tuple))
                else:
                    rows.append([])
                rowcounts.append(result.command_tuples if result.command_tuples is not None else -1)
        elif error is None and status == pq.ExecStatus.FATAL_ERROR:
            error = pg_errors.error_from_result(result, encoding=connection.info.encoding)
    transformer.set_pgresult(None)
    if error is not None:
        raise error
    return rows


def _wait(pgconn, events: int) -> int:
    """Until the connection's socket is ready for ``events``: in ``poll``, which lets other
    threads run meanwhile (libpq's own blocking waits would hold Python's lock throughout)."""
    poller = select.poll()
    poller.register(pgconn.socket, events)
    while not (ready := poller.poll()):
        pass
    return ready[0][1]


def _flush(pgconn) -> None:
    """Send what libpq holds (non-blocking: it may take several writes), reading meanwhile
    whatever the server already answers so that neither side waits on a full buffer."""
    while pgconn.flush():
        if _wait(pgconn, select.POLLIN | select.POLLOUT) & select.POLLIN:
            pgconn.consume_input()


def _read(pgconn, count: int) -> list:
    """The ``count`` results before the pipeline's Sync (a statement's, or its abort's)."""
    results = []
    ended = False  # libpq hands None once after each statement's results
    while True:
        if pgconn.is_busy():
            _wait(pgconn, select.POLLIN)
            pgconn.consume_input()
            continue
        result = pgconn.get_result()
        if result is None:
            if ended:  # twice in a row with nothing pending: the connection is gone
                message = pgconn.error_message.decode(errors="replace")
                raise pg_errors.OperationalError(message or "the connection was lost")
            ended = True
            continue
        ended = False
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            break
        results.append(result)
    if len(results) != count:
        raise pg_errors.OperationalError(f"{count} results expected before the Sync, {len(results)} read")
    return results
