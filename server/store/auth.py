"""Operators, their argon2 password hashes and bearer tokens (only sha256 hashes stored)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.db import models as m
from server.db.schemas import OperatorOut
from server.store.database import Database
from server.store.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)

DEFAULT_OPERATOR = "admin"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthStore:
    """Operator accounts, password checks and login tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hasher = PasswordHasher()

    def create_operator(self, name: str, role: m.Role | str, password: str) -> OperatorOut:
        role = m.Role(role)
        if not name or not password:
            raise ValueError("operator name and password must not be empty")
        password_hash = self._hasher.hash(password)  # before the write transaction
        try:
            with self.db.session() as s:
                row = m.Operator(name=name, role=role.value, password_hash=password_hash)
                s.add(row)
                s.flush()
                return OperatorOut.model_validate(row)
        except IntegrityError:
            raise ConflictError(f"operator {name!r} already exists") from None

    def put_operator(self, name: str, role: m.Role | str, password: str) -> OperatorOut:
        """Create the operator, or give the existing one ``role`` and ``password``."""
        role = m.Role(role)
        if not name or not password:
            raise ValueError("operator name and password must not be empty")
        password_hash = self._hasher.hash(password)  # before the write transaction
        with self.db.session() as s:
            row = s.scalar(select(m.Operator).where(m.Operator.name == name))
            if row is None:
                row = m.Operator(name=name, role=role.value, password_hash=password_hash)
                s.add(row)
            else:
                row.role, row.password_hash = role.value, password_hash
            s.flush()
            return OperatorOut.model_validate(row)

    def get_operator(self, name: str) -> OperatorOut | None:
        with self.db.session() as s:
            row = s.scalar(select(m.Operator).where(m.Operator.name == name))
            return None if row is None else OperatorOut.model_validate(row)

    def list_operators(self) -> list[OperatorOut]:
        with self.db.session() as s:
            rows = s.scalars(select(m.Operator).order_by(m.Operator.id)).all()
            return [OperatorOut.model_validate(r) for r in rows]

    def verify_password(self, name: str, password: str) -> OperatorOut | None:
        """The operator when ``password`` matches, else None.

        argon2 runs outside any transaction (SQLite transactions here take the
        write lock), and an unknown name is verified against a dummy hash, so
        it costs as long as a wrong password and does not reveal the name.
        """
        with self.db.session() as s:
            row = s.scalar(select(m.Operator).where(m.Operator.name == name))
            found = None if row is None else (OperatorOut.model_validate(row), row.password_hash)
        if found is None:
            self._password_matches(self.dummy_hash, password)
            return None
        operator, stored = found
        if not self._password_matches(stored, password):
            return None
        if self._hasher.check_needs_rehash(stored):
            self._rehash(operator.id, stored, self._hasher.hash(password))
        return operator

    def _password_matches(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @cached_property
    def dummy_hash(self) -> str:
        """What an unknown name is verified against; made on first use (the app warms it)."""
        return self._hasher.hash(secrets.token_hex(16))

    def _rehash(self, operator_id: int, old_hash: str, new_hash: str) -> None:
        """Store ``new_hash`` unless the password changed since ``old_hash`` was read."""
        with self.db.session() as s:
            row = s.get(m.Operator, operator_id)
            if row is not None and row.password_hash == old_hash:
                row.password_hash = new_hash

    def issue_token(self, operator_id: int, ttl_s: float, one_time: bool = False) -> str:
        """A new random bearer token; only its sha256 is stored."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.db.session() as s:
            if s.get(m.Operator, operator_id) is None:
                raise NotFoundError(f"no operator with id {operator_id}")
            s.add(
                m.AuthToken(
                    token_hash=_hash_token(token),
                    operator_id=operator_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl_s),
                    one_time=one_time,
                )
            )
        return token

    def resolve_token(self, token: str) -> OperatorOut | None:
        """The token's operator, or None if unknown or expired; a one-time token is used up."""
        now = datetime.now(UTC)
        with self.db.session() as s:
            row = s.scalar(select(m.AuthToken).where(m.AuthToken.token_hash == _hash_token(token)))
            if row is None or row.expires_at <= now:
                return None
            if row.one_time:
                if row.used_at is not None:
                    return None
                row.used_at = now
            return OperatorOut.model_validate(row.operator)

    def revoke_token(self, token: str) -> bool:
        with self.db.session() as s:
            row = s.scalar(select(m.AuthToken).where(m.AuthToken.token_hash == _hash_token(token)))
            if row is not None:
                s.delete(row)
            return row is not None

    def ensure_default_operator(self, ttl_s: float = 900.0) -> tuple[OperatorOut, str]:
        """Create operator ``admin`` if there is no operator yet; issue a one-time login token.

        The created account gets a random password nobody knows: the printed
        one-time token is the way in. Every call issues a fresh token.
        """
        with self.db.session() as s:
            row = s.scalar(
                select(m.Operator)
                .where(m.Operator.role == m.Role.OPERATOR.value)
                .order_by(m.Operator.id)
            )
            operator = None if row is None else OperatorOut.model_validate(row)
        if operator is None:
            operator = self.create_operator(
                DEFAULT_OPERATOR, m.Role.OPERATOR, secrets.token_hex(24)
            )
            log.info("created default operator %r", operator.name)
        return operator, self.issue_token(operator.id, ttl_s, one_time=True)
