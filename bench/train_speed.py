"""Env steps per second of ``tandem train`` (cpu profile, sim:lift), old against new.

    python bench/train_speed.py --base b3719fd             # base commit vs this checkout
    python bench/train_speed.py --base b3719fd --rounds 3 --steps 3000
    python bench/train_speed.py --base none --variants head,overlap --steps 600

Records scripted demos once, then trains ``--method`` for ``--steps`` env steps with
``--profile`` in each variant: the ``--base`` commit (checked out into a temporary git
worktree), this checkout as configured (``head``), and this checkout with the learner thread
on (``overlap``) or off (``no-overlap``), or with ``learner.bf16`` on (``bf16``). Variants
alternate round by round, so they share the machine's load. The figure of a run is the
median of ``train/env_steps_per_s`` over its metrics windows after ``--skip`` env steps (the
IL warm-up rollouts, which do no updates, fall before it); evaluations run only at the start
and the end, outside those windows. With ``--json``: one JSON object per variant (median over
rounds), then one with the speedups over the base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tandem(tree: Path, args: list[str], env: dict[str, str] | None = None) -> None:
    """Run ``python -m tandem ARGS`` from ``tree`` (its own code) and fail loudly."""
    full = {**os.environ, "PYTHONPATH": str(tree), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    full.update(env or {})
    res = subprocess.run(
        [sys.executable, "-m", "tandem", *args], cwd=tree, env=full, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"{res.stderr[-3000:]}\nfailed ({res.returncode}): tandem {args}")


def steps_per_s(run_dir: Path, skip: int) -> float:
    """Median train/env_steps_per_s of the metrics windows that end after ``skip`` steps."""
    rates = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["env_step"] > skip:
            rates.append(record["metrics"]["train/env_steps_per_s"])
    if not rates:
        raise SystemExit(f"{run_dir}: no metrics window after {skip} env steps")
    return statistics.median(rates)


def train(tree: Path, args: argparse.Namespace, demos: Path, out: Path, env: dict) -> float:
    tandem(tree, [
        "train", "--env", args.env, "--demos", str(demos), "--profile", args.profile,
        "--method", args.method, "--steps", str(args.steps), "--eval-every", str(args.steps),
        "--eval-episodes", "2", "--seed", "0", "--out", str(out), "--log-level", "WARNING",
        *(["--bc-steps", str(args.bc_steps)] if args.bc_steps is not None else []),
    ], {**env, "TANDEM_LEARNER__LOG_EVERY": str(args.log_every)})  # fmt: skip
    return steps_per_s(out, args.skip)


def variants(base: Path | None, names: list[str]) -> dict[str, tuple[Path, dict[str, str]]]:
    """{variant: (tree, environment overrides)} of the ``--variants`` asked for."""
    known: dict[str, tuple[Path, dict[str, str]]] = {
        "head": (ROOT, {}),
        "head, overlap on": (ROOT, {"TANDEM_LEARNER__OVERLAP": "true"}),
        "head, overlap off": (ROOT, {"TANDEM_LEARNER__OVERLAP": "false"}),
        "head, bf16": (ROOT, {"TANDEM_LEARNER__BF16": "true"}),
    }
    if base is not None:
        known = {"base": (base, {}), **known}
    unknown = [n for n in names if n not in known and n != "base"]
    if unknown:
        known_names = "base, head, overlap, no-overlap, bf16"
        raise SystemExit(f"unknown variants {unknown}; known: {known_names}")
    return {n: known[n] for n in known if n in names}


def measure(args: argparse.Namespace, base: Path | None, tmp: Path) -> dict[str, list[float]]:
    demos = tmp / "demos"
    tandem(ROOT, ["record-demos", "--env", args.env, "--episodes", str(args.demos),
                  "--out", str(demos), "--cameras", "none", "--seed", "1000"])  # fmt: skip
    figures: dict[str, list[float]] = {}
    aliases = {
        "overlap": "head, overlap on",
        "no-overlap": "head, overlap off",
        "bf16": "head, bf16",
    }
    names = [aliases.get(v, v) for v in args.variants.split(",")]
    for r in range(args.rounds):
        for i, (name, (tree, env)) in enumerate(variants(base, names).items()):
            value = train(tree, args, demos, tmp / f"run{r}-{i}", env)
            figures.setdefault(name, []).append(value)
            print(f"round {r + 1}/{args.rounds} {name}: {value:.1f} env steps/s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return figures


def report(args: argparse.Namespace, figures: dict[str, list[float]], base_rev: str) -> None:
    med = {name: statistics.median(v) for name, v in figures.items()}
    common = {"env": args.env, "profile": args.profile, "method": args.method,
              "steps": args.steps, "rounds": args.rounds}  # fmt: skip
    lines = []
    for name, value in med.items():
        rev = base_rev if name == "base" else "working tree"
        lines.append({"variant": name, "rev": rev, "env_steps_per_s": round(value, 2),
                      "runs": [round(v, 2) for v in figures[name]], **common})  # fmt: skip
    if "base" in med:
        lines.append({"variant": "speedup", "rev": base_rev, **common, **{
            f"{name} / base": round(value / med["base"], 3)
            for name, value in med.items() if name != "base"
        }})  # fmt: skip
    for line in lines:
        if args.json:
            print(json.dumps(line))
        else:
            print(", ".join(f"{k}={v}" for k, v in line.items()))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default="b3719fd", help="commit to compare against, or none")
    p.add_argument("--env", default="sim:lift")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--method", default="ibrl")
    p.add_argument("--steps", type=int, default=3000, help="env steps per run")
    p.add_argument("--skip", type=int, default=1000, help="env steps left out of the figure")
    p.add_argument("--log-every", type=int, default=250, help="env steps per metrics window")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--bc-steps", type=int, default=None, help="IL pre-training steps")
    p.add_argument(
        "--variants", default="base,head,overlap", help="of base, head, overlap, no-overlap, bf16"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per variant")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.base == "none":
            report(args, measure(args, None, tmp), "")
            return
        rev = git("rev-parse", "--short", args.base)
        base_tree = tmp / "base"
        git("worktree", "add", "--detach", str(base_tree), rev)
        try:
            figures = measure(args, base_tree, tmp)
        finally:
            git("worktree", "remove", "--force", str(base_tree))
        report(args, figures, rev)


if __name__ == "__main__":
    main()
