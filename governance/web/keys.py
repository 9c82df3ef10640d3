"""The key that signs web session cookies.

``SECRET_KEY`` from the environment wins. Otherwise the key is 32 random
bytes in a file (``WEB_SESSION_KEY_FILE``, default ``instance/web-session.key``)
made on first start. Several server workers may start at once, so the file
appears atomically: each writes a private temporary file (``O_CREAT|O_EXCL``,
mode 0600) and links it into place; ``link`` fails for all but the first, and
every worker then reads the one key that won.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import SessionKeyError

KEY_BYTES = 32


def load_or_create(path: str | os.PathLike) -> bytes:
    """Return the session key stored at ``path``, creating the file if missing."""
    path = Path(path)
    if not path.exists():
        _create(path)
    try:
        key = path.read_bytes()
    except OSError as e:
        raise SessionKeyError(f"cannot read the web session key {path}: {e.strerror}") from e
    if len(key) < KEY_BYTES:
        raise SessionKeyError(f"the web session key {path} holds {len(key)} bytes; "
                              f"at least {KEY_BYTES} are needed (delete it to make a new one)")
    return key


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
