"""Updates per second of the reference state and pixel configurations at batch 256.

    python bench/learner_throughput.py                      # CPU, both configs
    python bench/learner_throughput.py --device cuda --iters 300 --bf16 --compile
    python bench/learner_throughput.py --device cuda --compile --compile-mode reduce-overhead
    python bench/learner_throughput.py --configs cpu --threads 1 [--bf16]   # the cpu profile

One "update" is one critic step plus one actor step (the pixel reference schedule); the state
config runs ``num_critic_updates`` (5) critic steps and one actor step per call and reports
critic updates per second. The ``cpu`` config is ``learner/profiles/cpu.toml`` on sim:lift's
state as ``tandem train`` runs it (IL proposals from the replay's cache); its update calls
come once per ``update_freq`` env steps. Synthetic batches live on the device (no replay or
env cost). With --json each line is one JSON object per config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from learner.bc import BCPolicy
from learner.ibrl import IBRLAgent, resolve_device
from learner.obs import ObsSpec
from learner.service.config import profile_table
from tandem.settings.learner import LearnerSettings

SIM_LIFT_STATE = 21  # state dims of sim:lift (the cpu config's observations)


def make_batch(spec: ObsSpec, size: int, device: torch.device) -> dict:
    def obs() -> dict[str, torch.Tensor]:
        o = {"state": torch.randn(size, spec.state_dim, device=device)}
        for cam in spec.cameras:
            shape = (size, *spec.image_shape)
            o[cam] = torch.randint(0, 256, shape, device=device, dtype=torch.uint8)
        return o

    return {
        "obs": obs(), "next_obs": obs(),
        "action": torch.rand(size, spec.action_dim, device=device) * 2 - 1,
        "reward": torch.rand(size, device=device),
        "discount": torch.full((size,), 0.97, device=device),
    }  # fmt: skip


def bench(
    name: str, cfg: LearnerSettings, spec: ObsSpec, iters: int, warmup: int, *, as_json: bool
) -> None:
    device = resolve_device(cfg.device)
    if name == "cpu":
        il = BCPolicy(spec, hidden=cfg.bc_hidden_dim, layers=cfg.bc_layers, dropout=0.0)
    else:
        il = BCPolicy(
            spec, hidden=1024, layers=1 if spec.pixels else 3, dropout=0.5 * (not spec.pixels)
        )
    agent = IBRLAgent(cfg, spec, il.to(device), device)
    batches = [make_batch(spec, cfg.batch_size, device) for _ in range(cfg.num_critic_updates)]
    if name == "cpu":  # the replay's IL cache, as tandem train samples it
        with torch.no_grad():
            for batch in batches:
                batch["next_il_action"] = il(batch["next_obs"])
    for _ in range(warmup):
        agent.update(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):  # as tandem train runs them: metrics stay on the device
        agent.update_tensors(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    critic = iters * cfg.num_critic_updates
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    record = {
        "config": name, "device": device.type, "gpu": gpu, "batch": cfg.batch_size,
        "calls": iters, "critic_updates_per_s": round(critic / dt, 3),
        "update_calls_per_s": round(iters / dt, 3), "s_per_call": round(dt / iters, 4),
        "bf16": cfg.bf16, "compile": cfg.compile, "compile_mode": cfg.compile_mode,
        "tf32": cfg.tf32, "threads": torch.get_num_threads(),
    }  # fmt: skip
    text = (
        f"{name:<6} device={device.type} batch={cfg.batch_size} calls={iters} "
        f"critic_updates/s={critic / dt:8.2f} update_calls/s={iters / dt:8.2f} "
        f"s/call={dt / iters:.4f} bf16={cfg.bf16} compile={cfg.compile}"
    )
    print(json.dumps(record) if as_json else text, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--configs", default="state,pixel")
    p.add_argument(
        "--iters", type=int, default=None, help="timed calls (default 20 CPU / 300 CUDA)"
    )
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--compile-mode", default="default",
        help="torch.compile mode (reduce-overhead = CUDA graphs); with --compile",
    )  # fmt: skip
    p.add_argument("--no-tf32", action="store_true", help="CUDA: plain fp32 matmuls")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON line per config")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = resolve_device(args.device).type == "cuda"
    common = {"device": args.device, "bf16": args.bf16, "compile": args.compile, "method": "ibrl",
              "compile_mode": args.compile_mode, "tf32": not args.no_tf32}  # fmt: skip
    for name in args.configs.split(","):
        if name == "cpu":
            cfg = LearnerSettings(**{**profile_table("cpu"), **common})
            spec = ObsSpec(state_dim=SIM_LIFT_STATE, action_dim=7, raw_state_dim=SIM_LIFT_STATE)
            iters = args.iters or 50
        elif name == "state":
            cfg = LearnerSettings(**common, num_critic_updates=5, num_q=5)
            spec = ObsSpec(state_dim=63, action_dim=7, raw_state_dim=21, state_stack=3)
            iters = args.iters or (300 if cuda else 10)
        else:
            cfg = LearnerSettings(**common)
            spec = ObsSpec(state_dim=27, action_dim=7, cameras=("wrist",), image_shape=(96, 96, 3),
                           raw_state_dim=9, state_stack=3)  # fmt: skip
            iters = args.iters or (300 if cuda else 5)
        warmup = args.warmup if args.warmup is not None else (20 if cuda else 1)
        bench(name, cfg, spec, iters, warmup, as_json=args.json)


if __name__ == "__main__":
    main()
