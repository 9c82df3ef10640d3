"""The checkpoint signer's own memory, kept outside the database.

Beside the signing key the signer keeps the last (tree size, root) it signed,
in a small JSON file replaced atomically (write, fsync, rename, fsync the
directory). Before signing it demands a consistency proof from that state to
the new tree, so it can never sign a fork or a rolled-back database; at start
the service compares the database against the same state. An exclusive
``flock`` on a lock file serialises signers across processes on one host.

:class:`CheckpointMirror` publishes each signed note as one file in a
directory, created with ``O_EXCL`` and never rewritten: a copy of what was
published that survives whatever happens to the database.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SignerStateError

STATE_VERSION = 1


@dataclass(frozen=True)
class SignedState:
    """The last checkpoint this signer signed."""

    origin: str
    tree_size: int
    root_hash: str  # hex
    key_id: str
    signed_at: str

    @property
    def root(self) -> bytes:
        """The root hash as bytes."""
        return bytes.fromhex(self.root_hash)


class SignerStateFile:
    """Read, lock and atomically replace the signer's state file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def locked(self):
        """Hold an exclusive lock shared by every signer on this host."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read(self) -> SignedState | None:
        """Return the stored state, or None if the signer never signed.

        Raises:
            SignerStateError: the file exists but cannot be trusted as written.
        """
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SignerStateError(f"cannot read signer state {self.path}: {e.strerror}") from e
        try:
            data = json.loads(raw)
            if data.pop("version") != STATE_VERSION:
                raise ValueError("unknown version")
            state = SignedState(**data)
            if state.tree_size < 0 or len(state.root) != 32:
                raise ValueError("bad size or root")
        except (ValueError, TypeError, KeyError) as e:
            raise SignerStateError(f"signer state {self.path} is corrupt: {e}") from e
        return state

    def write(self, state: SignedState) -> None:
        """Replace the state atomically and durably."""
        data = json.dumps({"version": STATE_VERSION, **asdict(state)}, indent=2) + "\n"
        _atomic_write(self.path, data.encode())

    def set_aside(self, suffix: str) -> Path:
        """Rename the state file out of the way (operator-approved restore)."""
        target = self.path.with_name(f"{self.path.name}.{suffix}")
        os.replace(self.path, target)
        _fsync_dir(self.path.parent)
        return target


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_MIRROR_NAME = re.compile(r"^checkpoint-(\d{15})-([0-9a-f]{16})\.note$")


class CheckpointMirror:
    """An append-only directory of published signed notes, one file each."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def publish(self, tree_size: int, key_id: str, note: str) -> Path:
        """Write one note; an existing file for the same size and key is kept.

        Raises:
            SignerStateError: an existing file holds a different note, which
                means two different checkpoints were signed for one size.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"checkpoint-{tree_size:015d}-{key_id[:16]}.note"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if path.read_text(encoding="utf-8") != note:
                raise SignerStateError(f"{path} already holds a different checkpoint") from None
            return path
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(note)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.directory)
        return path

    def notes(self) -> list[tuple[Path, str]]:
        """Return every published note, smallest tree size first."""
        if not self.directory.is_dir():
            return []
        found = sorted(p for p in self.directory.iterdir() if _MIRROR_NAME.match(p.name))
        return [(p, p.read_text(encoding="utf-8")) for p in found]
