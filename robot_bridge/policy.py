"""The policy slot: whatever proposes actions (scripted expert now, a learned actor later).

A policy is any object with ``act(obs, explore) -> (action, info)`` and ``reset()``:
``obs`` is the Gymnasium-style dict ``{"state": float32 (D,), <camera>: uint8 H x W x 3}``,
``explore`` asks for exploration noise (training rollouts) or none (evaluation),
``action`` a 7-D array in [-1, 1], ``info`` a dict with the optional keys of
``tandem.messages.PolicyInfo`` (proposal, q_il, q_rl, uncertainty). ``reset()`` starts an episode
(stacked observations are forgotten). A deterministic, memoryless policy may define
``act(obs)`` alone: the slot adapts it once, when it is loaded. The learner swaps a
new actor in from another thread with ``PolicySlot.load``.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import ValidationError

from tandem.messages import PolicyInfo

log = logging.getLogger(__name__)
_INFO_KEYS = ("proposal", "q_il", "q_rl", "uncertainty")


class Policy(Protocol):
    def act(
        self, obs: dict[str, np.ndarray], explore: bool = True
    ) -> tuple[np.ndarray, dict[str, Any]]: ...

    def reset(self) -> None: ...


class ExpertPolicy:
    """Wraps a scripted expert (a callable obs -> action); it never explores, keeps no state."""

    def __init__(self, expert: Callable[[dict[str, np.ndarray]], np.ndarray]) -> None:
        self._expert = expert

    def act(
        self, obs: dict[str, np.ndarray], explore: bool = True
    ) -> tuple[np.ndarray, dict[str, Any]]:
        return np.asarray(self._expert(obs), dtype=np.float64), {"proposal": "expert"}

    def reset(self) -> None:
        """Nothing to forget."""


class _Deterministic:
    """Adapts a policy with ``act(obs)`` only (no exploration, no episode state)."""

    def __init__(self, policy: Any) -> None:
        self.inner = policy

    def act(
        self, obs: dict[str, np.ndarray], explore: bool = True
    ) -> tuple[np.ndarray, dict[str, Any]]:
        action, info = self.inner.act(obs)
        return action, info

    def reset(self) -> None:
        reset = getattr(self.inner, "reset", None)
        if callable(reset):
            reset()


def as_policy(policy: object) -> Policy:
    """``policy`` itself when it takes ``explore`` and has ``reset()``, else adapted."""
    try:
        takes_explore = "explore" in inspect.signature(policy.act).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        takes_explore = False
    if takes_explore and callable(getattr(policy, "reset", None)):
        return policy  # type: ignore[return-value]
    return _Deterministic(policy)


class PolicySlot:
    """Holds the current policy and its weights version; swapped atomically from any thread."""

    def __init__(self, kind: Literal["expert", "learner", "play"] | None = None) -> None:
        self.kind = kind  # what fills it (BridgeStatus.policy_kind); None: not said
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._version: int | None = None
        self.failures = 0
        self._bad_uncertainty_logged = False

    def load(self, policy: object | None, version: int | None = None) -> None:
        """Put ``policy`` (None empties the slot) in place; the next tick uses it.

        A policy is loaded fresh: one swapped in mid-episode stacks from the next observation.
        """
        adapted = None if policy is None else as_policy(policy)
        with self._lock:
            self._policy, self._version = adapted, version
        log.info("policy slot: %s (weights version %s)", type(policy).__name__, version)

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._policy is not None

    @property
    def version(self) -> int | None:
        with self._lock:
            return self._version

    def close(self) -> None:
        """Release what feeds the slot (nothing here; the learner's slot stops its threads)."""

    def reset(self) -> None:
        """Start of an episode: the policy forgets its stacked history (call on every start)."""
        with self._lock:
            policy = self._policy
        if policy is None:
            return
        try:
            policy.reset()
        except (ValueError, TypeError, RuntimeError) as exc:
            self.failures += 1
            log.warning("policy failed to reset (%s): %s", type(exc).__name__, exc)

    def act(
        self, obs: dict[str, np.ndarray], explore: bool = True
    ) -> tuple[np.ndarray, PolicyInfo] | None:
        """The policy's proposal and info, or None when the slot is empty or the policy failed.

        ``explore``: exploration noise (a training rollout); False in evaluation episodes.
        """
        with self._lock:
            policy, version = self._policy, self._version
        if policy is None:
            return None
        try:
            action, info = policy.act(obs, explore=explore)
            action = np.asarray(action, dtype=np.float64).reshape(-1)
            fields = {k: info[k] for k in _INFO_KEYS if k in info}
            fields["uncertainty"] = self._uncertainty(fields.get("uncertainty"))
            return action, PolicyInfo(weights_version=version, **fields)
        except (ValueError, TypeError, RuntimeError, KeyError, ValidationError) as exc:
            self.failures += 1
            log.warning("policy failed to act (%s): %s", type(exc).__name__, exc)
            return None

    def _uncertainty(self, value: object) -> float | None:
        """The policy's uncertainty as reported, or None when it is missing or unusable (not
        a finite number >= 0): a bad signal is logged once and never stops the policy acting."""
        if value is None:
            return None
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number) and number >= 0:
            return number
        if not self._bad_uncertainty_logged:
            self._bad_uncertainty_logged = True
            log.warning("policy reported an unusable uncertainty %r: dropped", value)
        return None
