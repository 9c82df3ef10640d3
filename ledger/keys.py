"""The signing key on disk and the trusted public keys kept beside it.

The trusted-keys file is the verifier's trust anchor outside the database:
every public key the ledger has signed with (current and retired) is added to
it when the key is created, so a key an intruder slips into the database's key
table is not trusted by ``ledger verify``. It holds public keys only.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .entry import utc_timestamp
from .errors import SignerStateError, SigningKeyError
from .signer import _atomic_write
from .signing import ALGORITHM, SigningKey, generate_key_file, key_id_of, load_key_file


@dataclass(frozen=True)
class TrustedKey:
    """A public key the operator trusts for this ledger's checkpoints."""

    key_id: str
    name: str
    public_key: bytes
    created: str
    retired: str | None = None

    def as_json(self) -> dict:
        """Return the JSON form stored in the trusted-keys file."""
        return {"key_id": self.key_id, "name": self.name, "algorithm": ALGORITHM,
                "public_key_b64": base64.b64encode(self.public_key).decode(),
                "created": self.created, "retired": self.retired}


class TrustedKeysFile:
    """A JSON file listing the trusted public keys, replaced atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def exists(self) -> bool:
        """True if the file exists."""
        return self.path.is_file()

    def read(self) -> list[TrustedKey]:
        """Return the trusted keys (empty if the file does not exist).

        Raises:
            SignerStateError: the file is unreadable or malformed.
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise SignerStateError(f"trusted keys file {self.path} is unreadable: {e}") from e
        keys = []
        try:
            for item in data["keys"]:
                public = base64.b64decode(item["public_key_b64"], validate=True)
                if key_id_of(public) != item["key_id"]:
                    raise ValueError(f"key id {item['key_id']} does not match its public key")
                keys.append(TrustedKey(item["key_id"], item["name"], public, item["created"],
                                       item.get("retired")))
        except (KeyError, TypeError, ValueError) as e:
            raise SignerStateError(f"trusted keys file {self.path} is malformed: {e}") from e
        return keys

    def write(self, keys: list[TrustedKey]) -> None:
        """Replace the file with ``keys``."""
        body = json.dumps({"version": 1, "keys": [k.as_json() for k in keys]}, indent=2) + "\n"
        _atomic_write(self.path, body.encode())

    def add(self, key: TrustedKey) -> None:
        """Add a key unless present."""
        keys = self.read()
        if all(k.key_id != key.key_id for k in keys):
            self.write(keys + [key])

    def retire(self, key_id: str, when: str) -> None:
        """Mark a key retired (it stays trusted for what it signed)."""
        self.write([TrustedKey(k.key_id, k.name, k.public_key, k.created,
                               k.retired or (when if k.key_id == key_id else None))
                    for k in self.read()])


def ensure_signing_key(key_path: str | os.PathLike, trusted: TrustedKeysFile, name: str,
                       passphrase: bytes | None = None) -> tuple[SigningKey, bool]:
    """Load the signing key, creating it (and trusting it) if there is none.

    Returns:
        The key, and True if it was created now.
    """
    created = False
    try:
        key = load_key_file(key_path, passphrase)
    except SigningKeyError:
        if Path(key_path).exists():
            raise
        key = generate_key_file(key_path, passphrase)
        created = True
    if all(k.key_id != key.key_id for k in trusted.read()):
        trusted.add(TrustedKey(key.key_id, name, key.public_key, utc_timestamp()))
    return key, created
