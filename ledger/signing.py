"""Ed25519 keys and signatures: the only module that touches ``cryptography``.

Private keys live in PEM (PKCS #8) files with mode 0600, optionally encrypted
with a passphrase. They are never returned as bytes by this module, never
logged, and never written anywhere but their own file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import SignatureError, SigningKeyError

ALGORITHM = "Ed25519"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def key_id_of(public_key: bytes) -> str:
    """Return the key id: lowercase hex SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key loaded from disk, able to sign and nothing else."""

    _key: Ed25519PrivateKey
    public_key: bytes

    @property
    def key_id(self) -> str:
        """The key id derived from the public key."""
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(key_id={self.key_id[:16]}...)"


def generate_key_file(path: str | os.PathLike, passphrase: bytes | None = None) -> SigningKey:
    """Create a new Ed25519 key at ``path`` (which must not exist) and return it.

    Raises:
        SigningKeyError: the file exists or cannot be written.
    """
    key = Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SigningKeyError(f"cannot create key file {path}: {e.strerror}") from e
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise SigningKeyError(f"refusing to overwrite existing key file {path}") from e
    except OSError as e:
        raise SigningKeyError(f"cannot create key file {path}: {e.strerror}") from e
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return _wrap(key)


def load_key_file(path: str | os.PathLike, passphrase: bytes | None = None) -> SigningKey:
    """Load an Ed25519 private key from a PEM file.

    Raises:
        SigningKeyError: missing, unreadable, wrong passphrase or not Ed25519.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise SigningKeyError(f"signing key file {path} does not exist") from e
    except OSError as e:
        raise SigningKeyError(f"cannot read signing key file {path}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except (ValueError, TypeError) as e:
        # The message names the problem (bad passphrase, bad PEM), never the key.
        raise SigningKeyError(f"cannot load signing key {path}: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
    return _wrap(key)


def _wrap(key: Ed25519PrivateKey) -> SigningKey:
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(key, public)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature.

    Raises:
        SignatureError: the key or signature is malformed, or does not verify.
    """
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise SignatureError(f"public key is {len(public_key)} bytes, expected {PUBLIC_KEY_SIZE}")
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureError(f"signature is {len(signature)} bytes, expected {SIGNATURE_SIZE}")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature as e:
        raise SignatureError("signature does not verify") from e
    except ValueError as e:
        raise SignatureError(f"invalid public key: {e}") from e
