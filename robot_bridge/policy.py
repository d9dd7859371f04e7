"""The policy slot: whatever proposes actions (scripted expert now, a learned actor later).

A policy is any object with ``act(obs) -> (action, info)``: ``obs`` is the
Gymnasium-style dict ``{"state": float32 (D,), <camera>: uint8 H x W x 3}``,
``action`` a 7-D array in [-1, 1], ``info`` a dict with the optional keys of
``tandem.messages.PolicyInfo`` (proposal, q_il, q_rl). The learner swaps a
new actor in from another thread with ``PolicySlot.load``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from tandem.messages import PolicyInfo

log = logging.getLogger(__name__)
_INFO_KEYS = ("proposal", "q_il", "q_rl")


class Policy(Protocol):
    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]: ...


class ExpertPolicy:
    """Wraps a scripted expert (a callable obs -> action)."""

    def __init__(self, expert: Callable[[dict[str, np.ndarray]], np.ndarray]) -> None:
        self._expert = expert

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        return np.asarray(self._expert(obs), dtype=np.float64), {"proposal": "expert"}


class PolicySlot:
    """Holds the current policy and its weights version; swapped atomically from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._version: int | None = None
        self.failures = 0

    def load(self, policy: Policy | None, version: int | None = None) -> None:
        """Put ``policy`` (None empties the slot) in place; the next tick uses it."""
        with self._lock:
            self._policy, self._version = policy, version
        log.info("policy slot: %s (weights version %s)", type(policy).__name__, version)

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._policy is not None

    @property
    def version(self) -> int | None:
        with self._lock:
            return self._version

    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, PolicyInfo] | None:
        """The policy's proposal and info, or None when the slot is empty or the policy failed."""
        with self._lock:
            policy, version = self._policy, self._version
        if policy is None:
            return None
        try:
            action, info = policy.act(obs)
            action = np.asarray(action, dtype=np.float64).reshape(-1)
            fields = {k: info[k] for k in _INFO_KEYS if k in info}
            return action, PolicyInfo(weights_version=version, **fields)
        except (ValueError, TypeError, RuntimeError, KeyError, ValidationError) as exc:
            self.failures += 1
            log.warning("policy failed to act (%s): %s", type(exc).__name__, exc)
            return None
