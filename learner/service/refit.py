"""HG-DAgger refit: fine-tune a copy of the IL policy (any kind, ``learner.il``) on demos plus
interventions, off-thread.

The trainer keeps acting and training with the current IL policy while the copy
trains; when the job is done, the trainer swaps the new policy in between two
updates (one reference assignment) and publishes new weights.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from learner.il import ILPolicy, il_update
from learner.service.jobs import Job

SampleFn = Callable[[int, np.random.Generator], tuple[dict[str, Any], Any]]
ToDevice = Callable[[dict[str, Any], Any], tuple[dict[str, torch.Tensor], torch.Tensor]]


def train_il(
    policy: ILPolicy,
    sample: SampleFn,
    to_device: ToDevice,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    grad_clip: float,
    seed: int,
    stop: threading.Event | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Run ``steps`` BC updates of ``policy`` on batches from ``sample``; returns last metrics."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    policy.requires_grad_(True)
    metrics: dict[str, float] = {}
    for i in range(steps):
        if stop is not None and stop.is_set():
            break
        obs, action = to_device(*sample(batch_size, rng))
        metrics = il_update(policy, opt, obs, action, grad_clip)
        if progress is not None:
            progress(i + 1, metrics)
    policy.eval().requires_grad_(False)
    return metrics


class Refit(Job):
    """One background fine-tuning job of a copy of ``il`` (see module docstring)."""

    name = "il-refit"

    def __init__(
        self,
        il: ILPolicy,
        sample: SampleFn,
        to_device: ToDevice,
        *,
        steps: int,
        batch_size: int,
        lr: float,
        grad_clip: float,
        seed: int,
    ) -> None:
        super().__init__()
        self.policy = copy.deepcopy(il)
        self.metrics: dict[str, float] = {}
        self._stop = threading.Event()
        self._steps, self._batch_size, self._seed = steps, batch_size, seed
        self._lr, self._grad_clip = lr, grad_clip
        self._sample, self._to_device = sample, to_device

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def work(self) -> None:
        self.metrics = train_il(
            self.policy, self._sample, self._to_device, steps=self._steps,
            batch_size=self._batch_size, lr=self._lr, grad_clip=self._grad_clip,
            seed=self._seed, stop=self._stop,
        )  # fmt: skip
