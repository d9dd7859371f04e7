"""IL policy kinds (learner.il_kind) alone as BC and as IBRL's proposal, on the multimodal
sim:detour and on sim:lift, over seeds; and the act latency of each kind.

    python bench/il_variants.py                    # 2 tasks x 5 kinds x 3 seeds
    python bench/il_variants.py --envs sim:detour --kinds mse,gmm --seeds 0 --steps 1000
    python bench/il_variants.py --envs sim:detour --kinds mse,gmm,diffusion --no-ibrl  # BC only

Records ``--demos`` scripted demonstrations per task (state only; sim:detour: half with the
expert passing the post on the left, half on the right), then for every (task, kind, seed),
in this process, one ``tandem train``-style run (``learner.train.Trainer``, ``--profile``
settings, method ibrl, ``learner.il_kind`` = the kind): the IL policy is pre-trained on the
demos and evaluated alone (= ``tandem train --method bc`` with that seed: the same
pre-training), then IBRL runs for ``--steps`` env steps (warm-up included) with that policy
as its proposal and is evaluated at the end (``--ibrl-eval-episodes``; BC:
``--eval-episodes``; both on the same episode seeds for every kind). ``--no-ibrl`` stops after
the BC part. IBRL proposes, for every kind, the best of ``--proposal-samples`` (8) samples of
the IL policy by the critic: the issue's rule for stochastic kinds (``mse`` has one action,
so its K samples are one); ``--proposal-samples 1`` proposes the mode or mean, the
``learner.il_proposal_samples`` default. Every kind trains ``--bc-steps`` IL steps except
those with their own budget given with ``--bc-steps-for`` (none by default: compare kinds at
equal budgets).

Act latency: per kind, the policy bundle of the seed-0 run (IL policy alone, as a bc bundle
acts, and the IBRL bundle: IL proposal + actor + critic), ``BundlePolicy.act`` on the task's
state observations, batch 1, one torch thread, on this CPU.

Prints a table and the targets of issue 14 (with ``--json``: one JSON object per (task,
kind) and per latency): GMM and diffusion BC >= MSE BC + 0.3 on sim:detour; IBRL with the
diffusion or the GMM proposal >= IBRL with MSE on every task; every kind's p99 < 20 ms.
Progress goes to stderr; ``--out`` keeps the demos, run directories and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

from learner.acting import load_policy  # noqa: E402
from learner.bundle import make_bundle  # noqa: E402
from learner.demos import record_episode, resolve_policy, write_demo  # noqa: E402
from learner.envs import make_env, parse_env  # noqa: E402
from learner.obs import to_torch  # noqa: E402
from learner.train import RLLoop, TrainArgs, Trainer, evaluate, pretrain_il  # noqa: E402
from tandem.cli.commands.learn import PROFILE_DIR  # noqa: E402
from tandem.settings import Settings, load_settings, save_settings  # noqa: E402

KINDS = ("mse", "gaussian", "gmm", "diffusion", "bins")
BC_MARGIN, P99_MS = 0.3, 20.0
MULTIMODAL = "sim:detour"
# kinds with their own IL budget by default (none: every kind gets --bc-steps, since MSE
# improves with more steps too, bench/README.md; --bc-steps-for sets one)
KIND_STEPS: dict[str, int] = {}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--envs", default="sim:detour,sim:lift")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--demos", type=int, default=100, help="demonstrations per task")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--bc-steps", type=int, default=4000, help="IL pre-training steps")
    p.add_argument("--bc-lr", type=float, default=1e-3, help="IL learning rate (every kind)")
    p.add_argument(
        "--bc-steps-for",
        action="append",
        default=[],
        metavar="KIND=STEPS",
        help="IL pre-training steps of one kind, instead of --bc-steps (repeatable)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="learner_set",
                   help="one more learner setting for every run, VALUE as JSON (repeatable), "
                   "e.g. il_diffusion_predict='\"x0\"'")  # fmt: skip
    p.add_argument("--steps", type=int, default=4000, help="IBRL env-step budget per run")
    p.add_argument("--proposal-samples", type=int, default=8, metavar="K",
                   help="IBRL's IL proposal: the best of K samples of the IL policy by the "
                   "critic (learner.il_proposal_samples; 1 = its mode or mean)")  # fmt: skip
    p.add_argument("--no-ibrl", action="store_true", help="BC only: skip the IBRL runs")
    p.add_argument("--critic-updates", type=int, default=2, help="critic updates per call")
    p.add_argument("--warmup-episodes", type=int, default=10, help="IBRL IL warm-up episodes")
    p.add_argument("--ibrl-eval-episodes", type=int, default=20)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--latency-reps", type=int, default=500, help="acts per latency figure")
    p.add_argument("--out", type=Path, default=Path("runs/il_variants"))
    p.add_argument("--json", action="store_true", help="print JSON records, not the table")
    args = p.parse_args()
    if args.proposal_samples < 1:
        p.error(f"--proposal-samples must be >= 1, got {args.proposal_samples}")
    return args


def record_demos(env_name: str, count: int, out: Path) -> Path:
    """``count`` successful scripted demos (sim:detour: half left, half right)."""
    root = out / env_name.replace(":", "-") / "demos"
    if root.exists():
        return root
    spec = parse_env(env_name)
    env = make_env(spec, cameras=())
    experts = (
        [("sim.experts:DetourExpert", {"side": s}) for s in ("left", "right")]
        if env_name == MULTIMODAL
        else [("expert", None)]
    )
    per = [count // len(experts) + (i < count % len(experts)) for i in range(len(experts))]
    seed = 1000
    for (name, args), wanted in zip(experts, per, strict=True):
        policy = resolve_policy(name, spec, args)
        kept = 0
        while kept < wanted:
            steps, final, summary = record_episode(env, policy, seed=seed)
            seed += 1
            if summary["success"]:
                write_demo(root, env, spec, steps, final_obs=final, summary=summary,
                           policy_name=name)  # fmt: skip
                kept += 1
    env.close()
    return root


def pairs(items: list[str], what: str) -> dict[str, str]:
    """["a=1", ...] -> {"a": "1"} (SystemExit on an item without "=")."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def settings_for(args: argparse.Namespace, kind: str) -> Settings:
    given = pairs(args.bc_steps_for, "--bc-steps-for")
    steps = {**KIND_STEPS, **{k: int(v) for k, v in given.items()}}
    extra = {k: json.loads(v) for k, v in pairs(args.learner_set, "--set").items()}
    learner = {"method": "ibrl", "il_kind": kind, "bc_steps": steps.get(kind, args.bc_steps),
               "bc_lr": args.bc_lr, "num_critic_updates": args.critic_updates,
               "warmup_episodes": args.warmup_episodes,
               "il_proposal_samples": args.proposal_samples,
               "eval_every": max(args.steps, 1), "eval_episodes": args.ibrl_eval_episodes,
               "checkpoint_every": 10**9, "log_every": 10**9, **extra}  # fmt: skip
    return load_settings(PROFILE_DIR / f"{args.profile}.toml", learner=learner)


def run_one(
    args: argparse.Namespace, env: str, kind: str, seed: int, demos: Path
) -> dict[str, Any]:
    """BC (the pre-trained IL policy alone) and IBRL success of one (task, kind, seed)."""
    run_dir = args.out / env.replace(":", "-") / kind / f"seed{seed}"
    done = run_dir / "result.json"
    if done.exists():
        cached = dict(json.loads(done.read_text()))
        same = cached.get("settings") == settings_for(args, kind).learner.model_dump(mode="json")
        if same and (args.no_ibrl or "ibrl_success" in cached):
            return cached
    shutil.rmtree(run_dir, ignore_errors=True)
    settings = settings_for(args, kind)
    t0 = time.monotonic()
    trainer = Trainer(settings, TrainArgs(parse_env(env), demos, args.steps, run_dir, seed))
    save_settings(settings, run_dir / "settings.json")
    assert trainer.il is not None
    pretrain_il(trainer.il, trainer.demos, trainer.cfg, trainer.device, trainer.rng)
    il, device = trainer.il, trainer.device

    def act_il(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
        with torch.no_grad():
            return il(to_torch(obs, device))[0].cpu().numpy(), True

    eval_seed = 10_000 + seed
    bc = evaluate(trainer.eval_env, act_il, trainer.spec, args.eval_episodes, eval_seed)
    bc_s = time.monotonic() - t0
    blob, _ = make_bundle(trainer.cfg, trainer.spec, agent=None, il=il, il_only=True)
    (run_dir / "il.safetensors").write_bytes(blob)
    result = {"env": env, "kind": kind, "seed": seed, "bc_success": bc["success_rate"],
              "bc_s": round(bc_s, 1),
              "settings": settings.learner.model_dump(mode="json")}  # fmt: skip
    if not args.no_ibrl:
        rows = RLLoop(trainer, None).run()
        result.update(ibrl_success=rows[-1]["success_rate"], ibrl_env_step=rows[-1]["env_step"],
                      ibrl_il_frac=rows[-1]["bc_selected_frac"])  # fmt: skip
    result["total_s"] = round(time.monotonic() - t0, 1)
    done.write_text(json.dumps(result))
    ibrl = f" ibrl {result['ibrl_success']:.2f}" if "ibrl_success" in result else ""
    print(f"{env} {kind} seed {seed}: bc {result['bc_success']:.2f}{ibrl} "
          f"({result['total_s']:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    return result


def latency(bundle: Path, env: str, reps: int) -> tuple[float, float]:
    """p50, p99 (ms) of ``BundlePolicy.act`` on observations of a scripted episode of ``env``."""
    policy = load_policy(bundle)
    sim_env = make_env(parse_env(env), cameras=())
    observations: list[dict[str, np.ndarray]] = []
    obs, _ = sim_env.reset(seed=0)
    rng = np.random.default_rng(0)
    while len(observations) < reps:
        observations.append(obs)
        obs, _, terminated, truncated, _ = sim_env.step(rng.uniform(-1, 1, sim_env.action_dim))
        if terminated or truncated:
            obs, _ = sim_env.reset(seed=len(observations))
    sim_env.close()
    for obs in observations[:20]:  # warm-up
        policy.act(obs, explore=False)
    times = []
    for obs in observations:
        t0 = time.perf_counter()
        policy.act(obs, explore=False)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def summarise(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    table: dict[tuple[str, str], dict[str, float]] = {}
    for key in sorted({(r["env"], r["kind"]) for r in results}):
        runs = [r for r in results if (r["env"], r["kind"]) == key]
        bc = [r["bc_success"] for r in runs]
        ibrl = [r.get("ibrl_success", float("nan")) for r in runs]
        table[key] = {"bc_mean": statistics.mean(bc), "bc_min": min(bc), "bc_max": max(bc),
                      "ibrl_mean": statistics.mean(ibrl), "ibrl_min": min(ibrl),
                      "ibrl_max": max(ibrl), "seeds": len(runs),
                      "env_step": runs[0].get("ibrl_env_step", 0)}  # fmt: skip
    return table


def verdicts(
    table: dict[tuple[str, str], dict[str, float]], lat: dict[tuple[str, str], tuple[float, ...]]
) -> list[tuple[str, float, bool]]:
    """(check, value, met) for the targets of issue 14."""
    out = []
    envs = sorted({e for e, _ in table})
    if (MULTIMODAL, "mse") in table:
        for kind in ("gmm", "diffusion"):
            if (MULTIMODAL, kind) in table:
                gap = table[(MULTIMODAL, kind)]["bc_mean"] - table[(MULTIMODAL, "mse")]["bc_mean"]
                out.append((f"{MULTIMODAL}: bc {kind} - bc mse >= {BC_MARGIN}", gap,
                            gap >= BC_MARGIN - 1e-9))  # fmt: skip
    for env in envs:
        if (env, "mse") not in table:
            continue
        ours = [table[(env, k)]["ibrl_mean"] for k in ("gmm", "diffusion") if (env, k) in table]
        best = max(ours, default=None)
        if best is not None and not math.isnan(best):
            gap = best - table[(env, "mse")]["ibrl_mean"]
            out.append((f"{env}: ibrl best of gmm/diffusion - ibrl mse >= 0", gap, gap >= -1e-9))
    for (env, kind), (_, p99, _, ibrl_p99) in sorted(lat.items()):
        worst = p99 if math.isnan(ibrl_p99) else max(p99, ibrl_p99)
        out.append((f"{env}: {kind} act p99 < {P99_MS:g} ms", worst, worst < P99_MS))
    return out


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    envs, kinds = args.envs.split(","), args.kinds.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.monotonic()
    results = []
    lat: dict[tuple[str, str], tuple[float, ...]] = {}
    for env in envs:
        demos = record_demos(env, args.demos, args.out)
        for kind in kinds:
            for seed in seeds:
                results.append(run_one(args, env, kind, seed, demos))
            run_dir = args.out / env.replace(":", "-") / kind / f"seed{seeds[0]}"
            il_p50, il_p99 = latency(run_dir / "il.safetensors", env, args.latency_reps)
            ibrl_p50, ibrl_p99 = (
                (float("nan"), float("nan"))
                if args.no_ibrl
                else latency(run_dir / "policy.safetensors", env, args.latency_reps)
            )
            lat[(env, kind)] = (il_p50, il_p99, ibrl_p50, ibrl_p99)
    table = summarise(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report(args, table, lat, time.monotonic() - t0)


def report(
    args: argparse.Namespace,
    table: dict[tuple[str, str], dict[str, float]],
    lat: dict[tuple[str, str], tuple[float, ...]],
    wall: float,
) -> None:
    if args.json:
        for (env, kind), row in table.items():
            print(json.dumps({"kind_row": "success", "env": env, "kind": kind, **row}))
        for (env, kind), (p50, p99, ibrl_p50, ibrl_p99) in lat.items():
            print(json.dumps({"kind_row": "latency", "env": env, "kind": kind, "il_p50_ms": p50,
                              "il_p99_ms": p99, "ibrl_p50_ms": ibrl_p50,
                              "ibrl_p99_ms": ibrl_p99}))  # fmt: skip
        return
    per_kind = {**KIND_STEPS, **pairs(args.bc_steps_for, "--bc-steps-for")}
    own = "".join(f", {k} {v}" for k, v in per_kind.items())
    print(f"\n{args.profile} profile, {args.demos} demos, seeds {args.seeds}, IL {args.bc_steps} "
          f"steps{own} at lr {args.bc_lr:g} ({args.eval_episodes} eval episodes), "
          f"IBRL {args.steps} env steps ({args.warmup_episodes} IL warm-up episodes, "
          f"{args.critic_updates} critic update(s) per call, IL proposal the best of "
          f"{args.proposal_samples} sample(s), {args.ibrl_eval_episodes} eval episodes); "
          f"{wall / 60:.0f} min")  # fmt: skip
    print("| task | kind | BC success mean (min-max) | IBRL success mean (min-max) | "
          "act p50 / p99 IL alone (ms) | act p50 / p99 IBRL (ms) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for (env, kind), r in table.items():
        p50, p99, ip50, ip99 = lat.get((env, kind), (float("nan"),) * 4)
        print(f"| {env} | {kind} | {r['bc_mean']:.2f} ({r['bc_min']:.2f}-{r['bc_max']:.2f}) | "
              f"{r['ibrl_mean']:.2f} ({r['ibrl_min']:.2f}-{r['ibrl_max']:.2f}) | "
              f"{p50:.2f} / {p99:.2f} | {ip50:.2f} / {ip99:.2f} |")  # fmt: skip
    print("\ntargets (issue 14):")
    for check, value, met in verdicts(table, lat):
        print(f"  {check:<58} {value:>7.2f}  {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
