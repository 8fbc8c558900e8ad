"""Bearer-token auth (SPEC 8): roles ``read`` and ``write`` (write implies read), tokens stored hashed.

Tokens come from ``settings.tokens`` (SHA-256 hex digests) and from ``<data_dir>/tokens.json``, which holds
the admin token generated on first start when no token is configured anywhere. Only its hash is stored;
the token itself goes to ``<data_dir>/admin.token`` with mode 0600 for the operator to pick up.

Unauthenticated: ``/healthz``, ``/readyz`` (probes) and the OpenAPI document and docs under ``/schema``
(they describe the API, not its data). Everything else needs a read token; handlers with
``opt={"role": "write"}`` need a write token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from zmi_reconciler.api.problems import Forbidden, Unauthorized
from zmi_reconciler.api.yamlio import atomic_write
from zmi_reconciler.config import Settings

log = logging.getLogger("zmi_reconciler.api")
TOKENS_FILE = "tokens.json"
ADMIN_TOKEN_FILE = "admin.token"


@dataclass(frozen=True)
class Token:
    """A known token: display ``name``, ``sha256`` hex digest, ``role`` read|write."""

    name: str
    sha256: str
    role: str


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (what settings and tokens.json store)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The known tokens; :meth:`authenticate` compares digests in constant time (``hmac.compare_digest``)."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = list(tokens)

    @classmethod
    def load(cls, settings: Settings, create_admin: bool = True) -> "TokenStore":
        """Tokens of ``settings`` plus ``<data_dir>/tokens.json``. With none at all and ``create_admin``, an
        admin (write) token is generated: hash to tokens.json, token to admin.token (0600)."""
        tokens = [Token(t.name, t.sha256, t.role) for t in settings.tokens]
        path = settings.data_dir / TOKENS_FILE
        if path.exists():
            for entry in json.loads(path.read_text(encoding="utf-8")):
                tokens.append(Token(entry["name"], entry["sha256"], entry.get("role", "read")))
        if not tokens and create_admin:
            tokens.append(create_admin_token(settings.data_dir))
        return cls(tokens)

    def authenticate(self, token: str) -> Token | None:
        """The matching token or None. Every stored digest is compared, so timing does not tell which."""
        digest = hash_token(token)
        found = None
        for known in self._tokens:
            if hmac.compare_digest(digest, known.sha256):
                found = known
        return found

    def __len__(self) -> int:
        return len(self._tokens)


def create_admin_token(data_dir: Path) -> Token:
    """Generate an admin token: its hash goes to ``tokens.json``, the token to ``admin.token`` (mode 0600)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    admin = Token("admin", hash_token(token), "write")
    token_path = data_dir / ADMIN_TOKEN_FILE
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(token_path, 0o600)
    entries = [{"name": admin.name, "sha256": admin.sha256, "role": admin.role}]
    atomic_write(data_dir / TOKENS_FILE, (json.dumps(entries, indent=2) + "\n").encode())
    log.warning("no API token configured: created an admin token in %s (mode 0600)", token_path)
    return admin


def bearer_guard(store: TokenStore):
    """A Litestar guard: 401 without or with an unknown token, 403 when the handler wants ``write``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <token>")
        known = store.authenticate(token.strip())
        if known is None:
            raise Unauthorized("unknown token")
        if handler.opt.get("role") == "write" and known.role != "write":
            raise Forbidden(f"token {known.name!r} has role read; this operation needs write")
        connection.scope.setdefault("state", {})["token_name"] = known.name

    return guard
