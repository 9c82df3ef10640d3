"""Group commit: concurrent appends of one process share a transaction.

A durable commit (an fsync) is the most expensive step of a small append, and
the append lock is held through it. When several threads of a server process
want to append at once, the first one opens the transaction (taking the lock
and reading the head) and each thread in turn runs its own body on it —
checks, appends, projection rows — inside a savepoint; whoever finds nobody
waiting behind it commits once for all. A member returns only after that
commit (an acknowledged append is durable), and a member whose body fails
rolls back its own savepoint (and the writer's in-memory state) without
touching the others'. With one thread there is no waiting and every
transaction commits on its own, as before.

Bodies still run one at a time, in the order threads get their turn, each
seeing what earlier members wrote: the serial semantics of the append lock
are unchanged. Only the commit is shared. Groups are capped
(``max_members``) so that the first member's latency stays bounded.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import LedgerUnavailableError


class _Rollback(Exception):
    """Passed into the store's transaction to make it roll back."""


class _OpenGroup:
    def __init__(self, scope, connection, writer):
        self.scope = scope  # the store's append_transaction() context, entered
        self.connection = connection
        self.writer = writer
        self.members = 0
        self.committed = threading.Event()
        self.error: BaseException | None = None


class GroupCommitter:
    """Runs ``Ledger.transaction`` bodies on shared, group-committed transactions."""

    def __init__(self, ledger, max_members: int = 16):
        self._ledger = ledger
        self.max_members = max_members
        self._turn = threading.Lock()  # whose body runs on the group's connection
        self._count_lock = threading.Lock()
        self._waiting = 0
        self._group: _OpenGroup | None = None
        self.transactions = 0  # bodies that committed (for metrics and tests)
        self.commits = 0  # durable commits that carried them

    @contextmanager
    def transaction(self) -> Iterator:
        with self._count_lock:
            self._waiting += 1
        self._turn.acquire()
        with self._count_lock:
            self._waiting -= 1
        try:
            group = self._group or self._open()
        except BaseException:
            self._turn.release()
            raise
        writer = group.writer
        # The first member needs no savepoint: if it fails, the group has
        # nothing else in it and is rolled back whole.
        savepoint = group.connection.begin_nested() if group.members else None
        mark = writer.mark()
        try:
            yield writer
            if savepoint is not None:
                savepoint.commit()
        except BaseException:
            writer.reset(mark)
            if savepoint is None:
                self._close(group, commit=False)
            else:
                try:
                    savepoint.rollback()
                finally:
                    self._finish(group)
            raise
        group.members += 1
        if not self._finish(group):
            group.committed.wait()
        if group.error is not None:
            raise LedgerUnavailableError(
                "the shared commit failed; nothing of this transaction was recorded") from group.error

    def _open(self) -> _OpenGroup:
        ledger = self._ledger
        scope = ledger.store.append_transaction()
        connection, head, pending = scope.__enter__()
        try:
            writer = ledger._new_writer(connection, head, pending)
        except BaseException as e:
            scope.__exit__(type(e), e, e.__traceback__)
            raise
        self._group = _OpenGroup(scope, connection, writer)
        return self._group

    def _finish(self, group: _OpenGroup) -> bool:
        """Leave the group open for a waiting thread, or commit it; True if this thread committed."""
        with self._count_lock:
            others = self._waiting
        if others and group.members < self.max_members:
            self._turn.release()
            return False
        self._close(group, commit=group.members > 0)
        return True

    def _close(self, group: _OpenGroup, commit: bool) -> None:
        """Commit (or roll back) the group, release the turn, then run post-commit work."""
        self._group = None
        try:
            if commit:
                group.scope.__exit__(None, None, None)
            else:
                group.scope.__exit__(_Rollback, _Rollback(), None)
        except BaseException as e:  # noqa: BLE001 - handed to every member
            group.error = e
        finally:
            self._turn.release()
            group.committed.set()
        if commit and group.error is None:
            self.transactions += group.members
            self.commits += 1
            self._ledger._committed(group.writer)
