"""What a verification run found: fault kinds, faults, and the report that lists them.

A :class:`VerificationReport` is falsy when anything is wrong, and names
each fault with its ``seq`` or checkpoint size (``verify.py`` fills it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .merkle import EMPTY_ROOT

PAYLOAD_CHANGED = "payload_changed"
ENTRY_MISSING = "entry_missing"
ORDER_CHANGED = "order_changed"
CHAIN_BROKEN = "chain_broken"
MALFORMED_ENTRY = "malformed_entry"
INDEX_CORRUPT = "index_corrupt"
CHECKPOINT_FORGED = "checkpoint_forged"
CHECKPOINT_UNTRUSTED_KEY = "checkpoint_untrusted_key"
CHECKPOINT_INCONSISTENT = "checkpoint_inconsistent"
EXTERNAL_MISMATCH = "external_checkpoint_mismatch"
ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class Fault:
    """One thing found wrong."""

    kind: str
    message: str
    seq: int | None = None
    checkpoint_size: int | None = None
    source: str = "database"

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else f"checkpoint size {self.checkpoint_size}"
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class VerificationReport:
    """Everything a verification run checked and found."""

    mode: str
    start: int = 0
    tree_size: int = 0
    root_hash: bytes = EMPTY_ROOT
    entries_checked: int = 0
    checkpoints_checked: int = 0
    external_checked: int = 0
    trust: str = ""
    faults: list[Fault] = field(default_factory=list)
    verified_checkpoint: tuple[int, bytes] | None = None

    @property
    def ok(self) -> bool:
        """True when no fault was found."""
        return not self.faults

    def __bool__(self) -> bool:
        return self.ok

    @property
    def first_bad_seq(self) -> int | None:
        """The lowest seq named by a fault, if any."""
        seqs = [f.seq for f in self.faults if f.seq is not None]
        return min(seqs) if seqs else None

    def kinds(self) -> set[str]:
        """The set of fault kinds found."""
        return {f.kind for f in self.faults}

    def summary(self) -> str:
        """One line for the end of a run."""
        scope = (f"entries {self.start}..{self.tree_size - 1}" if self.tree_size > self.start
                 else "no new entries")
        counts = (f"{self.entries_checked} entries, {self.checkpoints_checked} checkpoints, "
                  f"{self.external_checked} external anchors")
        if self.ok:
            return f"OK ({self.mode}): {scope}; checked {counts}; root {self.root_hash.hex()}"
        first = self.first_bad_seq
        where = f"first bad seq {first}" if first is not None else str(self.faults[0])
        return f"FAILED ({self.mode}): {len(self.faults)} fault(s), {where}; checked {counts}"

    def add(self, kind: str, message: str, **where) -> None:
        """Record a fault."""
        self.faults.append(Fault(kind, message, **where))
