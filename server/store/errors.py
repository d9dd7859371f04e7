"""The store's errors; routers map them to 404 and 409."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class NotFoundError(StoreError, LookupError):
    """No such episode, operator, camera or step."""


class ConflictError(StoreError):
    """The request clashes with the current state (duplicate name, episode still recording)."""


NotFound = NotFoundError  # the short names the app uses
Conflict = ConflictError
