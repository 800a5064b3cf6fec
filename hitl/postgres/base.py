"""PostgreSQL with the tenant of the request in every transaction (``ENGINE = "hitl.postgres"``).

Django's PostgreSQL backend, plus what row-level security needs (``hitl.tenancy``):

- each new connection ``SET ROLE``\\ s to ``DATABASE_APP_ROLE`` (neither superuser nor
  owner nor ``BYPASSRLS``), so that the policies hold whatever the code does; the
  migrations and the test database's flush step back to the owner (``hitl.tenancy.as_owner``);
- every statement goes through ``hitl.tenancy.apply_scope``, which sends the scope of the
  running code (a tenant, a named cross-tenant reason, or nothing) to the transaction with
  ``set_config(..., true)`` in the same round trip as the statement, when the transaction
  does not hold it yet. Transaction-local settings are what makes this safe behind a
  transaction pooler: nothing outlives the transaction that set it.

The backend remembers what the current transaction holds and forgets it when the
transaction ends or a savepoint rolls back (which undoes a ``set_config`` made after it).

A hot path sends its statements in one round trip through :meth:`DatabaseWrapper.hitl_pipeline`
(``hitl.postgres.pipeline``: libpq's pipeline mode under psycopg's cursors), with the scope,
``BEGIN`` and ``COMMIT`` it needs.

Statements may also be handed to the commit (:meth:`DatabaseWrapper.hitl_execute_at_commit`):
they are sent in one pipeline with the ``COMMIT``, so that a lock they take (the audit
chain's counter row) is held for the server's time only, not across a round trip to this
process and its wait for a CPU. If one fails, the transaction rolls back and the commit raises.

A transaction whose commit releases such a lock (:meth:`DatabaseWrapper.hitl_commit_then_flush`)
commits without waiting for the WAL flush and waits for it after, in the same round trip: the
lock is then not held through the disk's flush, and the commit is as durable when it returns.
"""

import functools
import logging
import time
from types import SimpleNamespace

from django.db.backends.postgresql import base
from psycopg import errors as pg_errors
from psycopg import pq

from hitl import tenancy
from hitl.postgres import pipeline

logger = logging.getLogger(__name__)

# A transaction mark (``hitl_transaction_marks``): see ``hitl_commit_then_flush``.
COMMIT_THEN_FLUSH = "commit, then wait for the flush"
_COMMIT_WITHOUT_FLUSH_WAIT = "SELECT set_config('synchronous_commit', 'off', true)"
# A transaction of its own that writes WAL (a logical decoding message of no content, which
# decoding consumers ignore unless they ask for messages) and so, with the session's
# synchronous_commit, waits at its commit for the flush of every record before its own:
# the commit before it among them. (PostgreSQL 17 names this use: its ``flush`` argument.)
_FLUSH_WAIT = "SELECT pg_logical_emit_message(true, 'hitl', '')"
_FLUSH_WAIT_ALLOWED = "SELECT has_function_privilege('pg_logical_emit_message(boolean, text, text)', 'EXECUTE')"


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hitl_scope_held = tenancy.NOTHING
        self.hitl_at_commit: list[tuple[tuple[str, str], str, list, str | None]] = []
        # What the running transaction has done that its commit must know of (names the code
        # chooses, e.g. ``tenants.audit``'s "a chain row is locked"); emptied when it ends.
        self.hitl_transaction_marks: set[str] = set()
        self.hitl_scopes_sent = 0  # how many times a scope went with a statement (tests/test_tenancy.py)
        self.hitl_flush_wait_allowed: bool | None = None  # may this connection send _FLUSH_WAIT (asked once)
        if self.alias != "__no_db__":  # the connection that creates databases reads no table
            self.execute_wrappers.append(tenancy.apply_scope)

    def init_connection_state(self):
        super().init_connection_state()
        self.hitl_scope_held = tenancy.NOTHING
        self.hitl_scope_cursor = self.connection.cursor()  # one per connection: a new cursor a statement costs CPU
        self.hitl_session = pipeline.Session(self.connection)
        self.hitl_flush_wait_allowed = None
        pipeline.forget_with_psycopg(self.hitl_session)
        tenancy.enter_app_role(self)

    def hitl_execute_at_commit(self, sql: str, params: list, *, unless_marked: str | None = None) -> bool:
        """Send ``sql`` with the ``COMMIT`` of the running transaction, in the running code's
        scope, when that commit is the outermost ``atomic`` block's (returns True); otherwise
        (a savepoint of an enclosing block, as in the test suite, or autocommit) returns
        False and the caller executes it at once. Statements go in the order handed;
        ``unless_marked``: not sent if the transaction holds that mark when it commits."""
        if len(self.atomic_blocks) != 1 or self.get_autocommit() or self.needs_rollback:
            return False
        self.hitl_at_commit.append((tenancy.current(), sql, params, unless_marked))
        return True

    def hitl_commit_then_flush(self) -> None:
        """The running transaction holds, from a statement handed to its commit until it ends, a
        lock every writer of a tenant queues for (the audit chain's counter row, ``tenants.audit``):
        its commit then does not wait for the WAL flush under that lock (the disk's time, during
        which the tenant's every claim, review and change would wait) but right after it, in the
        same round trip: ``synchronous_commit`` off for this transaction, then one statement of
        its own whose commit waits for the flush of everything before it (``_FLUSH_WAIT``). When
        the commit returns, the transaction is as durable as a synchronous commit would have made
        it. What differs: others see it from its commit, before the flush (a synchronous commit
        shows itself only after it), so a crash in that window loses what a reader may have seen;
        nothing durable can have been built on it, since any later commit that waits for the
        flush waits for it too. Each such commit takes two transaction ids. Where the role may not
        send that statement (asked once a connection), the commit waits for the flush as before."""
        self.hitl_transaction_marks.add(COMMIT_THEN_FLUSH)

    def _hitl_may_wait_for_flush(self) -> bool:
        if self.hitl_flush_wait_allowed is None:  # (asked once a connection and role, inside the transaction)
            with self.wrap_database_errors:
                self.hitl_flush_wait_allowed = bool(self.connection.execute(_FLUSH_WAIT_ALLOWED).fetchone()[0])
        return self.hitl_flush_wait_allowed

    def hitl_pipeline(
        self,
        statements,
        *,
        settings: dict[str, str] | None = None,
        commit: bool = False,
        flush_after: bool = False,
    ) -> list:
        """Run ``(sql, params)`` statements in one round trip, in the running code's scope, and
        return each one's rows (a list of tuples, as a cursor's ``fetchall``).

        Inside a transaction: with its ``BEGIN`` if nothing began it yet, and the scope if the
        transaction does not hold it; ``commit``: ending with the ``COMMIT`` (for ``_commit``), and
        with ``flush_after`` the wait for the WAL flush after it (``hitl_commit_then_flush``).
        In autocommit mode the statements are one transaction, with the scope and ``settings``
        (PostgreSQL's, transaction-local, as ``tenancy.statement_settings``). An error is
        raised as Django's (``IntegrityError``...) once the round trip is over; the statements
        after the failed one did not run, and a transaction is left to its ``atomic`` to roll back.
        The connection's other execute wrappers (the test suite's watchers) see each statement.
        """
        if self.connection is None:
            self.ensure_connection()
        in_transaction = not self.autocommit
        wanted = tenancy.current()
        head = []
        if in_transaction:
            if self.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE:
                head.append(("BEGIN", None))
            if wanted != self.hitl_scope_held:
                head.append((tenancy.SET_SCOPE_SQL, wanted))
                self.hitl_scopes_sent += 1
        else:
            extra = tuple(value for pair in sorted(settings.items()) for value in pair) if settings else ()
            if wanted != tenancy.NOTHING or extra:
                head.append((tenancy.scope_sql(len(extra) // 2), (*wanted, *extra)))
                self.hitl_scopes_sent += 1
        sent = [*head, *statements]
        if commit:
            sent.append(("COMMIT", None))
            if flush_after:
                sent.append((_FLUSH_WAIT, None))
        self.validate_no_broken_transaction()
        logged = self.queries_logged
        started = time.monotonic() if logged else 0.0
        with self.wrap_database_errors:
            # The rows of ``statements`` only (none for a commit's: nobody reads them).
            read = range(len(head), len(head) + (0 if commit else len(statements)))
            try:
                rows = pipeline.run(self.hitl_session, sent, read)
            except pg_errors.Error as error:
                if not flush_after or len(self.hitl_session.rowcounts) != len(sent) - 1:
                    raise
                # The COMMIT went through, only the wait for the flush failed (a role whose right
                # to send it was revoked since it was asked): the commit is not undone, nor
                # reported failed; it is as durable as an asynchronous commit, and the next
                # commits of the connection wait for the flush themselves.
                self.hitl_flush_wait_allowed = False
                logger.error("the wait for the WAL flush after a commit failed (the commit stands): %s", error)
                rows = []
        if in_transaction and not commit:
            self.hitl_scope_held = wanted
        if logged or len(self.execute_wrappers) > 1:
            self._hitl_observe(sent, logged, time.monotonic() - started)
        return rows[len(head) : len(head) + len(statements)]

    def _hitl_observe(self, sent, logged: bool, duration: float) -> None:
        """Show the statements to the other execute wrappers and to the query log, as a cursor would."""
        observers = [wrapper for wrapper in self.execute_wrappers if wrapper is not tenancy.apply_scope]
        if observers:
            for (sql, params), rowcount in zip(sent, self.hitl_session.rowcounts, strict=False):
                context = {"connection": self, "cursor": SimpleNamespace(rowcount=rowcount)}
                execute = _ran
                for wrapper in reversed(observers):
                    execute = functools.partial(wrapper, execute)
                execute(sql, params, False, context)
        if logged:
            for sql, _ in sent:
                self.queries_log.append({"sql": sql, "time": f"{duration:.3f}"})

    def _commit(self):
        pending, self.hitl_at_commit = self.hitl_at_commit, []
        marks, self.hitl_transaction_marks = self.hitl_transaction_marks, set()
        pending = [entry for entry in pending if entry[3] is None or entry[3] not in marks]
        try:
            if not pending or self.connection is None:
                return super()._commit()
            statements, held = [], self.hitl_scope_held
            for scope, sql, params, _ in pending:
                if scope != held:
                    statements.append((tenancy.SET_SCOPE_SQL, scope))
                    held = scope
                statements.append((sql, params))
            flush_after = COMMIT_THEN_FLUSH in marks and self._hitl_may_wait_for_flush()
            if flush_after:
                statements.append((_COMMIT_WITHOUT_FLUSH_WAIT, None))
            # One round trip for all of it, the COMMIT last. The scope was set above when needed:
            # hitl_pipeline adds none of its own (the transaction holds the running code's).
            self.hitl_scope_held = tenancy.current()
            self.hitl_pipeline(statements, commit=True, flush_after=flush_after)
        finally:
            self.hitl_scope_held = tenancy.NOTHING

    def _rollback(self):
        self.hitl_at_commit = []
        self.hitl_transaction_marks = set()
        try:
            return super()._rollback()
        finally:
            self.hitl_scope_held = tenancy.NOTHING

    def _close(self):
        self.hitl_at_commit = []
        self.hitl_transaction_marks = set()
        return super()._close()

    def _savepoint_rollback(self, sid):
        try:
            return super()._savepoint_rollback(sid)
        finally:
            self.hitl_scope_held = tenancy.UNKNOWN

    def _set_autocommit(self, autocommit):
        self.hitl_scope_held = tenancy.NOTHING
        return super()._set_autocommit(autocommit)


def _ran(sql, params, many, context):
    """The end of the observers' chain: the statement already ran in the pipeline."""
    return None
