"""Learning curves of ``tandem train`` runs: success rate against env steps, seeds grouped.

A run directory holds ``eval.csv`` (one row per evaluation) and ``run.json`` (env,
method, seed). Runs of the same (env, method) are one curve: the mean over seeds at
each evaluated env step, with the min-max band. ``tandem plot`` and
``bench/sample_efficiency.py`` draw with :func:`plot_success`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

Row = dict[str, object]  # env, method, seed, env_step, success_rate
EVAL_FILE = "eval.csv"
RUN_FILE = "run.json"


class PlotError(ValueError):
    """A path holds no run, or a run's files cannot be read."""


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run directories: each path that holds an ``eval.csv``, or those found below it."""
    runs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise PlotError(f"{path}: not a directory")
        found = [path] if (path / EVAL_FILE).is_file() else sorted(
            p.parent for p in path.rglob(EVAL_FILE)
        )  # fmt: skip
        if not found:
            raise PlotError(f"{path}: no {EVAL_FILE} in it or below it (not a tandem train run)")
        runs += [p for p in found if p not in runs]
    return runs


def read_run(run_dir: Path) -> list[Row]:
    """The evaluation rows of one run, labelled with its env, method and seed."""
    info = _run_info(run_dir)
    try:
        with open(run_dir / EVAL_FILE, newline="") as f:
            evals = list(csv.DictReader(f))
        return [
            {**info, "env_step": int(e["env_step"]), "success_rate": float(e["success_rate"])}
            for e in evals
        ]
    except (KeyError, ValueError, TypeError) as exc:
        raise PlotError(f"{run_dir / EVAL_FILE}: unreadable row ({exc})") from exc


def _run_info(run_dir: Path) -> Row:
    """env, method, seed from run.json. Runs from before run.json: the method from
    settings.json, the seed from the folder name's trailing number, and the env from the
    folder two levels up when the layout is ENV/METHOD/seedN (the benchmark's)."""
    path = run_dir / RUN_FILE
    if path.is_file():
        info = json.loads(path.read_text())
        return {"env": str(info["env"]), "method": str(info["method"]), "seed": int(info["seed"])}
    settings = run_dir / "settings.json"
    method = json.loads(settings.read_text())["learner"]["method"] if settings.is_file() else "?"
    seed = re.search(r"(\d+)$", run_dir.name)
    env = run_dir.parent.parent.name if run_dir.parent.name == method else "?"
    return {"env": env, "method": method, "seed": int(seed.group(1)) if seed else 0}


def curve(rows: Sequence[Row]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Env steps and, at each, the mean, min and max success over the rows' seeds."""
    by_step: dict[int, list[float]] = {}
    for r in rows:
        by_step.setdefault(int(str(r["env_step"])), []).append(float(str(r["success_rate"])))
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    return steps, means, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps]


def plot_success(path: Path, rows: Sequence[Row], title: str) -> None:
    """One panel per env, one line per method (mean over seeds, min-max band); a PNG."""
    plt = _pyplot()
    envs = sorted({str(r["env"]) for r in rows})
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for method in sorted({str(r["method"]) for r in rows if r["env"] == env}):
            mine = [r for r in rows if (r["env"], r["method"]) == (env, method)]
            seeds = len({r["seed"] for r in mine})
            steps, mean, low, high = curve(mine)
            label = f"{method} ({seeds} seed{'s' if seeds > 1 else ''})"
            if len(steps) == 1:  # evaluated once (BC): a level, not a curve
                ax.axhline(mean[0], linestyle="--", label=f"{label}, one evaluation")
                continue
            line = ax.plot(steps, mean, label=label, marker="o", markersize=3)[0]
            ax.fill_between(steps, low, high, alpha=0.2, color=line.get_color())
        ax.set(title=env, xlabel="env steps (warm-up included)", ylabel="success rate",
               ylim=(-0.03, 1.03))  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotError("plotting needs matplotlib: pip install 'tandem[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
