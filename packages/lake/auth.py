"""API keys: ``lk_<id>_<secret>``, stored as SHA-256 hashes, compared in constant time; three roles."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ROLES = ("viewer", "analyst", "admin")  # each role may do what the previous ones may
PREFIX = "lk"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str  # shown once

    @property
    def token(self) -> str:
        return f"{PREFIX}_{self.key_id}_{self.secret}"


def new_key() -> NewKey:
    return NewKey(secrets.token_hex(6), secrets.token_urlsafe(32))


KEY_PATTERN = re.compile(rf"{PREFIX}_[0-9a-f]{{12}}_[A-Za-z0-9_-]{{43}}")


def well_formed(token: str) -> bool:
    """The shape ``new_key`` gives: a 12-hex id and a 256-bit url-safe secret."""
    return KEY_PATTERN.fullmatch(token) is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)


def allows(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)
