"""Offline RL on mixed-quality sim data: SRPO against IQL (+ AWR) and BC, and act time.

    python bench/offline_rl.py                        # 2 tasks x 3 seeds x srpo, iql, bc
    python bench/offline_rl.py --envs sim:lift --seeds 0 --critic-steps 500 ...

For every task and seed it records a mixed-quality dataset (``--mix``, the
``tandem make-dataset`` format; the dataset seed is the run seed), trains ``srpo``, then
``iql`` on the same data with SRPO's critic (stage 1 is the same IQL critic, so it is
trained once), then ``bc``, and evaluates each policy in the env (``--eval-episodes``).
A run already finished in ``--out`` is reused.

Act time: per action, batch 1, one torch thread, on this CPU, in the same process: the
SRPO policy (one MLP forward) against sampling the diffusion behaviour model with DDPM
(``--ddpm-steps``, default 100: Diffusion Policy's DDPM inference steps) and DDIM with 10
steps, for the trained behaviour model and for one of the official size (256 wide, 3
blocks of 1024).

Prints a table (with ``--json``: one JSON object per (task, method) and per sampler).
Targets (issue 15): SRPO success >= BC + 0.2 and >= IQL; SRPO >= 25x faster than DDPM.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learner.envs import make_env, parse_env  # noqa: E402
from learner.offline.config import OfflineSettings  # noqa: E402
from learner.offline.datasets import make_dataset, parse_mix  # noqa: E402
from learner.offline.diffusion import ScoreNet, sample_ddim, sample_ddpm  # noqa: E402
from learner.offline.train import OfflineTrainer  # noqa: E402

MIX = "expert:10,noisy@0.1:10,noisy@0.3:10,partial:20,failed:20,random:10"
METHODS = ("srpo", "iql", "bc")
MARGIN_BC, SPEEDUP = 0.2, 25.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--envs", default="sim:lift,sim:drawer")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--mix", default=MIX)
    p.add_argument("--critic-steps", type=int, default=4000)
    p.add_argument("--behavior-steps", type=int, default=32000)
    p.add_argument("--policy-steps", type=int, default=6000)
    p.add_argument("--policy-lr", type=float, default=1e-3)
    p.add_argument("--behavior-hidden", type=int, default=128)
    p.add_argument("--behavior-expand", type=int, default=2)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--eval-episodes", type=int, default=30)
    p.add_argument("--ddpm-steps", type=int, default=100)
    p.add_argument("--timing-reps", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path("runs/offline_rl"))
    p.add_argument("--json", action="store_true", help="one JSON object per result line")
    return p.parse_args()


def settings(args: argparse.Namespace, method: str) -> OfflineSettings:
    return OfflineSettings(
        method=method, critic_steps=args.critic_steps, behavior_steps=args.behavior_steps,
        policy_steps=args.policy_steps, policy_lr=args.policy_lr,
        behavior_hidden=args.behavior_hidden, behavior_expand=args.behavior_expand,
        beta=args.beta, expectile=0.9, reward_scale=10.0,
        eval_episodes=args.eval_episodes, threads=1,
    )  # fmt: skip


def dataset(args: argparse.Namespace, env: str, seed: int) -> Path:
    path = args.out / env.replace(":", "-") / f"data-seed{seed}"
    if not path.exists():
        spec = parse_env(env)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        make_dataset(make_env(spec, cameras=(), time_limit=50), spec, parse_mix(args.mix), tmp,
                     seed)  # fmt: skip
        tmp.rename(path)
    return path


def train(args: argparse.Namespace, env: str, seed: int, method: str) -> tuple[float, Path]:
    run = args.out / env.replace(":", "-") / f"{method}-seed{seed}"
    result = run / "eval.json"
    if not result.exists():
        srpo_critic = run.with_name(f"srpo-seed{seed}") / "stages" / "critic.pt"
        if method == "iql" and srpo_critic.exists():  # the same stage 1: train it once
            (run / "stages").mkdir(parents=True, exist_ok=True)
            shutil.copy(srpo_critic, run / "stages" / "critic.pt")
        t0 = time.monotonic()
        OfflineTrainer(settings(args, method), parse_env(env), dataset(args, env, seed), run,
                       seed).run()  # fmt: skip
        print(f"{env} {method} seed {seed}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return float(json.loads(result.read_text())["success_rate"]), run


def act_ms(fn: object, reps: int) -> float:
    """Median wall time of ``fn()`` in ms (after 3 warm-up calls)."""
    times = []
    for i in range(reps + 3):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def timing(args: argparse.Namespace, trainer_dir: Path, env: str) -> list[dict[str, object]]:
    trainer = OfflineTrainer(settings(args, "srpo"), parse_env(env), dataset(args, env, 0),
                             trainer_dir)  # fmt: skip
    for stage in ("behavior", "policy"):
        trainer.load_stage(trainer_dir / "stages" / f"{stage}.pt", stage)
    policy, behavior = trainer.policy.eval(), trainer.behavior.eval()
    state = {"state": torch.as_tensor(trainer.data.obs[:1])}
    norm = trainer.norm(state["state"])
    official = ScoreNet(norm.shape[1], trainer.spec.action_dim).eval()
    reps = args.timing_reps
    with torch.no_grad():
        rows = [("srpo policy", 1, "policy", act_ms(lambda: policy(state), reps * 10))]
        for name, net in (("trained", behavior), ("official size", official)):
            rows += [
                (f"DDPM, {name} denoiser", args.ddpm_steps, name,
                 act_ms(lambda n=net: sample_ddpm(n, norm, args.ddpm_steps), max(reps // 3, 3))),
                (f"DDIM, {name} denoiser", 10, name,
                 act_ms(lambda n=net: sample_ddim(n, norm, 10), reps)),
            ]  # fmt: skip
    base = rows[0][3]
    return [{"kind": "timing", "sampler": s, "steps": k, "denoiser": d, "ms": ms,
             "speedup_vs_srpo": ms / base} for s, k, d, ms in rows]  # fmt: skip


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    envs, seeds = args.envs.split(","), [int(s) for s in args.seeds.split(",")]
    records: list[dict[str, object]] = []
    first_srpo: Path | None = None
    for env in envs:
        per_method = {}
        for method in METHODS:
            per_method[method] = [train(args, env, s, method) for s in seeds]
        first_srpo = first_srpo or per_method["srpo"][0][1]
        means = {m: statistics.mean(r for r, _ in v) for m, v in per_method.items()}
        for method, results in per_method.items():
            records.append({
                "kind": "success", "env": env, "method": method, "seeds": len(seeds),
                "per_seed": [r for r, _ in results], "success_mean": means[method],
                "margin_vs_bc": means[method] - means["bc"],
                "margin_vs_iql": means[method] - means["iql"],
            })  # fmt: skip
    assert first_srpo is not None
    records += timing(args, first_srpo, envs[0])
    for r in records:
        print(json.dumps(r) if args.json else _text(r), flush=True)


def _text(r: dict[str, object]) -> str:
    if r["kind"] == "success":
        return (f"{r['env']:<11} {r['method']:<5} success {r['success_mean']:.2f} "
                f"(seeds {r['per_seed']}), minus bc {r['margin_vs_bc']:+.2f}, "
                f"minus iql {r['margin_vs_iql']:+.2f}")  # fmt: skip
    return (f"{r['sampler']:<30} {r['steps']:>4} steps {r['ms']:9.3f} ms/action "
            f"({r['speedup_vs_srpo']:.0f}x the SRPO policy)")  # fmt: skip


if __name__ == "__main__":
    main()
