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

Statements may also be handed to the commit (:meth:`DatabaseWrapper.hitl_execute_at_commit`):
they are sent in one pipeline with the ``COMMIT``, so that a lock they take (the audit
chain's counter row) is held for the server's time only, not across a round trip to this
process and its wait for a CPU. If one fails, the transaction rolls back and the commit raises.
"""

from django.db.backends.postgresql import base

from hitl import tenancy


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hitl_scope_held = tenancy.NOTHING
        self.hitl_at_commit: list[tuple[tuple[str, str], str, list, str | None]] = []
        # What the running transaction has done that its commit must know of (names the code
        # chooses, e.g. ``tenants.audit``'s "a chain row is locked"); emptied when it ends.
        self.hitl_transaction_marks: set[str] = set()
        self.hitl_scopes_sent = 0  # how many times a scope went with a statement (tests/test_tenancy.py)
        if self.alias != "__no_db__":  # the connection that creates databases reads no table
            self.execute_wrappers.append(tenancy.apply_scope)

    def init_connection_state(self):
        super().init_connection_state()
        self.hitl_scope_held = tenancy.NOTHING
        self.hitl_scope_cursor = self.connection.cursor()  # one per connection: a new cursor a statement costs CPU
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

    def _commit(self):
        pending, self.hitl_at_commit = self.hitl_at_commit, []
        marks, self.hitl_transaction_marks = self.hitl_transaction_marks, set()
        pending = [entry for entry in pending if entry[3] is None or entry[3] not in marks]
        try:
            if not pending or self.connection is None:
                return super()._commit()
            with self.wrap_database_errors, self.connection.pipeline():
                cursor = self.hitl_scope_cursor
                held = self.hitl_scope_held
                for scope, sql, params, _ in pending:
                    if scope != held:
                        cursor.execute(tenancy.SET_SCOPE_SQL, scope)
                        held = scope
                    cursor.execute(sql, params)
                self.connection.commit()  # in the pipeline: one round trip for all of it
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
