"""Password hashes: argon2id (memory-hard), via argon2-cffi with its RFC 9106 defaults.

:func:`verify` does the same work whether or not the user exists (a dummy hash), so the
answer time does not tell which user names exist.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
_dummy: str | None = None
_dummy_lock = threading.Lock()


def hash_password(password: str) -> str:
    """The argon2id hash (with its own salt and parameters) to store."""
    return _hasher.hash(password)


def _dummy_hash() -> str:
    global _dummy
    with _dummy_lock:
        if _dummy is None:
            _dummy = _hasher.hash("not a password: equalises the time of unknown users")
        return _dummy


def verify(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (None: unknown user, always False)."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
