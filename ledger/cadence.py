"""When checkpoints are signed: when a server starts, every N entries, at least every T seconds.

After each commit :meth:`CheckpointCadence.after_commit` signs a checkpoint
when ``checkpoint_every`` entries or ``checkpoint_interval`` seconds have
passed since the last one. A server calls :meth:`sign_at_start`, so that its
tree has a checkpoint from the start (a fresh ledger one of size 0), and runs
:meth:`start_timer`, so that a quiet ledger still gets its last entries
signed within the interval. A signature that fails after a commit never fails
the commit, nor one at start the server's start: it stays due and is retried;
a rollback found while signing blocks further writes.
"""

from __future__ import annotations

import logging
import threading
import time

from .errors import RollbackError

log = logging.getLogger(__name__)


class CheckpointCadence:
    """Decides when the ledger signs its next checkpoint, and signs it."""

    def __init__(self, ledger):
        self._ledger = ledger
        self._last_size: int | None = None  # unknown until the first commit reads it
        self._last_at = time.monotonic()
        self._timer: threading.Thread | None = None
        self._timer_stop = threading.Event()

    def signed(self, size: int) -> None:
        """Note that a checkpoint of ``size`` exists now."""
        self._last_size = max(size, self._last_size or 0)
        self._last_at = time.monotonic()

    def after_commit(self, size: int) -> None:
        """Sign a checkpoint if one is due after a commit that made the tree ``size``."""
        settings = self._ledger.settings
        if self._last_size is None:
            latest = self._ledger.latest_checkpoint()
            self._last_size = latest.tree_size if latest else 0
        every = settings.checkpoint_every
        if (every > 0 and size - self._last_size >= every) or self._interval_due(size):
            self._sign_quietly()

    def _interval_due(self, size: int) -> bool:
        interval = self._ledger.settings.checkpoint_interval
        return (interval > 0 and size > (self._last_size or 0)
                and time.monotonic() - self._last_at >= interval)

    def sign_at_start(self) -> None:
        """Sign a checkpoint of the tree unless its newest checkpoint covers it; never raise.

        The signer's rollback protection applies as to every signature: a
        database that is not an extension of what the signer signed is never
        signed over, and writes are refused. A ledger that refuses writes, an
        unusable key or an unreachable database leave the server running
        (its readiness check says why), with the checkpoint still due.
        """
        ledger = self._ledger
        try:
            ledger.ensure_writable()
            latest = ledger.latest_checkpoint()
            if latest is not None and latest.tree_size == ledger.size():
                self.signed(latest.tree_size)
                return
            ledger.create_checkpoint()
        except Exception as e:  # noqa: BLE001 - a server starts whatever the ledger's state
            if isinstance(e, RollbackError):
                ledger.refuse_writes(str(e))
            log.warning("no checkpoint signed at start: %s", e)

    def _sign_quietly(self) -> None:
        """Sign a checkpoint after a commit; the append itself already succeeded."""
        try:
            self._ledger.create_checkpoint()
        except RollbackError as e:
            self._ledger.refuse_writes(str(e))
        except Exception:  # noqa: BLE001 - the caller's entry is committed: never fail it now
            log.exception("automatic checkpoint failed; it stays due and is retried later")

    def start_timer(self) -> None:
        """Sign checkpoints every ``checkpoint_interval`` seconds in a daemon thread."""
        settings = self._ledger.settings
        if self._timer or settings.checkpoint_interval <= 0 or not settings.signing_key_path:
            return

        def run():
            while not self._timer_stop.wait(settings.checkpoint_interval):
                try:
                    if self._last_size is None or self._interval_due(self._ledger.size()):
                        self._sign_quietly()
                except Exception:  # keep the timer alive through a database outage
                    log.exception("checkpoint timer")

        self._timer = threading.Thread(target=run, name="ledger-checkpoints", daemon=True)
        self._timer.start()

    def stop_timer(self) -> None:
        """Stop the background checkpoint thread, if running."""
        self._timer_stop.set()
