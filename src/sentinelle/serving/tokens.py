"""API tokens: who may call ``sentinelle serve``, kept as salted hashes in a JSON file.

A token's secret is ``snt_<id>_<random>``: ``id`` (12 hex digits) names the entry that holds
its hash, so a check costs one key derivation, and a secret that names no entry costs none.
Only ``scrypt(secret, salt)`` is stored, with a salt of its own per token; the secret is shown
once, by ``sentinelle tokens add``. The file is written atomically with mode 0600.

Scopes: ``predict`` (scoring and the model card, when ``serve --predict-auth required``),
``feedback`` (``POST /feedback``, ``GET /feedback/stats``) and ``admin`` (every scope).

``Verifier`` checks presented secrets for the server: it re-reads the file when its inode,
size or modification time changes (so a revocation holds at the next request) and remembers
the secrets it has verified, by their SHA-256, until then.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinelle import io
from sentinelle.errors import UserError

__all__ = [
    "NAME",
    "SCOPES",
    "Token",
    "TokenFileError",
    "Verifier",
    "add",
    "load",
    "parse_scopes",
    "revoke",
]

SCOPES = ("predict", "feedback", "admin")
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
SECRET = re.compile(r"snt_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
VERSION = 1
# scrypt with 16 MiB of memory: ~40 ms a check here (docs/serving.md); verified secrets are
# remembered, so a client pays it once per token file version.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
KEYS = {"name", "scopes", "id", "salt", "hash", "created"}
CACHE_SIZE = 4096


class TokenFileError(UserError):
    """The token file is missing, unreadable or not a valid token file."""


@dataclass(frozen=True)
class Token:
    name: str
    scopes: tuple[str, ...]
    id: str
    salt: bytes
    hash: bytes
    created: str

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "id": self.id,
            "salt": self.salt.hex(),
            "hash": self.hash.hex(),
            "created": self.created,
        }


def _derive(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"feedback,predict"`` -> ``("feedback", "predict")``; an unknown scope is a
    ``UserError``."""
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    bad = [s for s in scopes if s not in SCOPES]
    if not scopes or bad:
        raise UserError(
            f"--scope {text!r} is invalid: give one or more of {', '.join(SCOPES)}, "
            "separated by commas"
        )
    return tuple(scopes)


def _token(entry: Any, where: str) -> Token:
    if not isinstance(entry, dict) or set(entry) != KEYS:
        raise TokenFileError(
            f"{where}: a token is an object with the keys {', '.join(sorted(KEYS))}"
        )
    name, scopes, tid = entry["name"], entry["scopes"], entry["id"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise TokenFileError(f"{where}: name {str(name)[:80]!r} is invalid")
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        raise TokenFileError(f"{where}: scopes {str(scopes)[:80]} are invalid: {', '.join(SCOPES)}")
    if not isinstance(tid, str) or not re.fullmatch(r"[0-9a-f]{12}", tid):
        raise TokenFileError(f"{where}: id {str(tid)[:80]!r} is invalid")
    try:
        salt, digest = bytes.fromhex(entry["salt"]), bytes.fromhex(entry["hash"])
    except (TypeError, ValueError):
        raise TokenFileError(f"{where}: salt and hash must be hexadecimal") from None
    if len(salt) != 16 or len(digest) != SCRYPT["dklen"]:
        raise TokenFileError(f"{where}: salt must be 16 bytes and hash {SCRYPT['dklen']}")
    if not isinstance(entry["created"], str):
        raise TokenFileError(f"{where}: created must be a string")
    return Token(name, tuple(scopes), tid, salt, digest, entry["created"])


def parse(data: bytes, path: Path) -> list[Token]:
    """The tokens of a token file's bytes; anything wrong is one ``TokenFileError`` line."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"{path}: not a token file (not valid JSON: {exc})") from None
    if (
        not isinstance(obj, dict)
        or obj.get("version") != VERSION
        or set(obj) != {"version", "tokens"}
    ):
        raise TokenFileError(
            f'{path}: not a token file: expected {{"version": {VERSION}, "tokens": [...]}} '
            "as written by `sentinelle tokens add`"
        )
    if not isinstance(obj["tokens"], list):
        raise TokenFileError(f"{path}: tokens must be a list")
    tokens = [_token(e, f"{path}: token {i}") for i, e in enumerate(obj["tokens"], 1)]
    for key in ("name", "id"):
        seen = [getattr(t, key) for t in tokens]
        if len(set(seen)) != len(seen):
            raise TokenFileError(f"{path}: two tokens have the same {key}")
    return tokens


def load(path: Path) -> list[Token]:
    """Every token of the file at ``path``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TokenFileError(
            f"{path}: no such token file (create one with `sentinelle tokens add`)"
        ) from None
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the token file: {exc.strerror}") from None
    return parse(data, path)


def _write(path: Path, tokens: list[Token]) -> None:
    body = {"version": VERSION, "tokens": [t.entry() for t in tokens]}
    io.write_bytes(path, io.dumps_json(body).encode(), mode=0o600)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: an exclusive lock on the file's folder (the file itself is
    replaced by each write)."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add(path: Path, name: str, scopes: tuple[str, ...]) -> tuple[Token, str]:
    """A new token named ``name`` stored in ``path`` (created if absent), and its secret."""
    if not NAME.fullmatch(name):
        raise UserError(
            f"token name {name[:80]!r} is invalid: 1 to 64 of a-z 0-9 _ . - starting with a "
            "letter or digit"
        )
    with _locked(path):
        tokens = load(path) if Path(path).exists() else []
        if any(t.name == name for t in tokens):
            raise UserError(f"{path}: a token named {name!r} exists; revoke it first")
        tid = secrets.token_hex(6)
        while any(t.id == tid for t in tokens):
            tid = secrets.token_hex(6)
        secret = f"snt_{tid}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = Token(name, scopes, tid, salt, _derive(secret, salt), created)
        _write(path, [*tokens, token])
    return token, secret


def revoke(path: Path, name: str) -> Token:
    """Remove the token named ``name``; the server refuses it from its next request on."""
    with _locked(path):
        tokens = load(path)
        gone = [t for t in tokens if t.name == name]
        if not gone:
            names = ", ".join(t.name for t in tokens) or "none"
            raise UserError(f"{path}: no token named {name[:80]!r} (there are: {names})")
        _write(path, [t for t in tokens if t.name != name])
    return gone[0]


class Verifier:
    """Checks presented secrets against a token file that may change while the server runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._by_id: dict[str, Token] = {}
        self._verified: dict[bytes, Token] = {}
        self._error: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file if it changed (one ``stat``); a file that became unreadable or
        invalid refuses every token until it is fixed (``TokenFileError``)."""
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            signature = None
        with self._lock:
            if signature == self._signature and signature is not None:
                if self._error:
                    raise TokenFileError(self._error)
                return
            self._signature, self._verified = signature, {}
            try:
                self._by_id = {t.id: t for t in load(self.path)}
                self._error = None
            except TokenFileError as exc:
                self._by_id, self._error = {}, str(exc)
                raise

    def cached(self, secret: str) -> Token | None:
        """The token of a secret verified since the file last changed (no key derivation)."""
        self.refresh()
        return self._verified.get(hashlib.sha256(secret.encode()).digest())

    def verify(self, secret: str) -> Token | None:
        """The token whose secret this is, else None (the hash compared in constant time)."""
        known = self.cached(secret)
        if known is not None:
            return known
        match = SECRET.fullmatch(secret)
        token = self._by_id.get(match.group(1)) if match else None
        if token is None or not hmac.compare_digest(_derive(secret, token.salt), token.hash):
            return None
        with self._lock:
            if self._by_id.get(token.id) is not token:  # revoked meanwhile
                return None
            if len(self._verified) >= CACHE_SIZE:
                self._verified.clear()
            self._verified[hashlib.sha256(secret.encode()).digest()] = token
        return token
