"""Where training scalars go besides the run directory's own files: TensorBoard or W&B.

``make_sink(kind, run_dir, config)`` returns a sink with ``log(scalars, step)`` and
``close()``; ``"none"`` gives one that drops everything. The run directory keeps its
``metrics.jsonl`` and ``eval.csv`` either way: the sinks are views for the tools a lab
already runs. TensorBoard events go to ``RUN_DIR/tensorboard``; W&B runs in offline
mode unless ``WANDB_MODE`` says otherwise, with its files under ``RUN_DIR/wandb``
(``wandb sync`` uploads them).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

LoggerKind = Literal["none", "tensorboard", "wandb"]
WANDB_PROJECT = "tandem"


class LoggerError(RuntimeError):
    """The chosen logger's package is missing or cannot start."""


class ScalarSink(Protocol):
    def log(self, scalars: dict[str, Any], step: int) -> None: ...

    def close(self) -> None: ...


class NullSink:
    def log(self, scalars: dict[str, Any], step: int) -> None:
        return None

    def close(self) -> None:
        return None


class TensorBoardSink:
    """Scalars as TensorBoard events (``torch.utils.tensorboard``, needs ``tensorboard``)."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise LoggerError("--logger tensorboard needs: pip install 'tandem[loggers]'") from exc
        self.log_dir = log_dir
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, scalars: dict[str, Any], step: int) -> None:
        for name, value in finite(scalars).items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Scalars as a Weights & Biases run (offline unless ``WANDB_MODE`` is set)."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise LoggerError("--logger wandb needs: pip install 'tandem[loggers]'") from exc
        mode = os.environ.get("WANDB_MODE", "offline")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", WANDB_PROJECT), dir=str(run_dir),
            name=run_dir.name, config=config, mode=mode,  # type: ignore[arg-type]
        )  # fmt: skip
        log.info("wandb run %s (%s mode) in %s", self.run.id, mode, run_dir / "wandb")

    def log(self, scalars: dict[str, Any], step: int) -> None:
        self.run.log(finite(scalars), step=step)

    def close(self) -> None:
        self.run.finish()


def finite(scalars: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite entries (NaN marks "no value this window" in the metrics)."""
    out = {}
    for name, value in scalars.items():
        if isinstance(value, bool | int | float) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def make_sink(kind: LoggerKind, run_dir: Path, config: dict[str, Any]) -> ScalarSink:
    if kind == "tensorboard":
        return TensorBoardSink(run_dir / "tensorboard")
    if kind == "wandb":
        return WandbSink(run_dir, config)
    return NullSink()
