"""What ``bench/run_all.py`` runs: each script's arguments per preset, its figures, their targets.

Every script is run with ``--json`` and prints one JSON object per result line; the
``figures`` function of its entry turns those records into the report's rows and raises
(KeyError, ValueError) when a record it needs is missing, so a script whose output changed
shows up as a failed row, not as a silently shorter table. Where each target comes from is
written in bench/README.md.

Presets: ``smoke`` only proves that every script still runs and prints its figures (seconds
each, the figures mean nothing), ``quick`` gives rough figures in a few minutes, ``full``
uses the durations the documented figures were taken with. ``{tmp}`` in an argument is
replaced by a fresh temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Record = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A stated target: how it reads in the table, and the check of a value (None: not here)."""

    text: str
    check: Callable[[float], bool] | None = None


def bound(op: Literal["<", "<=", ">="], limit: float, unit: str = "", why: str = "") -> Target:
    """A target ``value <op> limit``, e.g. ``bound("<", 2, "ms")`` reads "< 2 ms"."""
    checks: dict[str, Callable[[float], bool]] = {
        "<": lambda v: v < limit,
        "<=": lambda v: v <= limit,
        ">=": lambda v: v >= limit,
    }
    text = " ".join(part for part in (op, f"{limit:g}", unit, f"({why})" if why else "") if part)
    return Target(text, checks[op])


class Figure(NamedTuple):
    """One row of the report; ``target`` None means the script has no stated target."""

    name: str
    value: float
    unit: str
    target: Target | None = None


@dataclass(frozen=True)
class Bench:
    """One script under bench/ as run_all runs it: its arguments (after --json) per preset."""

    name: str
    figures: Callable[[list[Record]], list[Figure]]
    smoke: str
    quick: str
    full: str = ""  # the script's defaults
    skip: dict[str, str] = field(default_factory=dict)  # preset -> why it is not run
    timeout_s: dict[str, float] = field(
        default_factory=lambda: {"smoke": 60, "quick": 300, "full": 1800}
    )

    def args(self, preset: str) -> list[str]:
        return str(getattr(self, preset)).split()


def one(records: list[Record], **match: Any) -> Record:
    """The single record whose fields equal ``match``; ValueError when there is none or several."""
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise ValueError(f"expected one record with {match}, found {len(found)}")
    return found[0]


# ------------------------------------------------------------------------- bridge_timing
NO_DRIFT = bound("<", 1, "ms", "no drift")


def lateness_target(scenario: str) -> Target:
    """docs/bridge.md: p99 < 1 ms with SCHED_FIFO; without it < 2 ms idle, < 10 ms loaded."""
    if not scenario.endswith("no RT"):
        return bound("<", 1, "ms")
    return bound("<", 2 if scenario.startswith("idle") else 10, "ms")


def bridge_timing(records: list[Record]) -> list[Figure]:
    one(records, scenario="idle, no RT")  # the scenarios with RT depend on the OS
    if not any(r["scenario"].startswith("loaded") for r in records):
        raise ValueError("no loaded scenario")
    figures = []
    for r in records:
        name = r["scenario"]
        figures += [
            Figure(f"lateness p99, {name}", r["lateness_p99_ms"], "ms", lateness_target(name)),
            Figure(f"overruns, {name}", r["overruns"], "ticks", None),
            Figure(
                f"drift (mean lateness, last 10 ticks), {name}",
                r["last_10_mean_lateness_ms"], "ms", NO_DRIFT if name == "idle, no RT" else None,
            ),
        ]  # fmt: skip
    return figures


# ---------------------------------------------------------------------------- sim_render
TICK_TARGET = bound("<", 10, "ms")


def sim_render(records: list[Record]) -> list[Figure]:
    tick = one(records, measure="env_step_2_cameras_jpeg")
    parts = ("physics_ik_step", "render_2_cameras", "render_2_cameras_jpeg", "env_step_2_cameras")
    rows = [one(records, measure=m) for m in parts]
    figures = [Figure(f"{r['label']}, p99", r["p99_ms"], "ms") for r in rows]
    return [
        *figures,
        Figure(f"{tick['label']}, p50", tick["p50_ms"], "ms", TICK_TARGET),
        Figure(f"{tick['label']}, p99", tick["p99_ms"], "ms", TICK_TARGET),
    ]


# ------------------------------------------------------------------- recorder_throughput
def recorder_throughput(records: list[Record]) -> list[Figure]:
    top, paced = one(records, phase="max"), one(records, phase="paced")
    health = one(records, phase="health")
    why = f"{top['bridges']} bridges x {top['rate_hz']:g} Hz"
    needed = bound(">=", top["needed_steps_per_s"], "steps/s", why)
    return [
        Figure("max sustained throughput", top["steps_per_s"], "steps/s", needed),
        Figure("per-step handling latency p99", top["latency_p99_ms"], "ms"),
        Figure(f"max backlog, paced at {top['rate_hz']:g} Hz", paced["max_backlog_steps"], "steps"),
        Figure("steps lost (gaps + missing)", health["gaps"] + health["missing"], "steps"),
        Figure("malformed + errors", health["malformed"] + health["errors"], "messages"),
    ]


# ------------------------------------------------------------------------ server_latency
def server_latency(records: list[Record]) -> list[Figure]:
    cams = sorted((r for r in records if r["case"] == "camera"), key=lambda r: r["viewers"])
    if not cams:
        raise ValueError("no camera records")
    control, most = one(records, case="control"), cams[-1]
    fanout = f"{most['viewers']} viewers at {most['fps']:g} fps"
    return [
        *(
            Figure(f"camera capture->send p99, {r['viewers']} viewers", r["send_p99_ms"], "ms")
            for r in cams
        ),
        Figure(f"camera capture->receive p99, {fanout}", most["recv_p99_ms"], "ms"),
        Figure(f"camera slowest client, {fanout}", most["fps_min"], "fps"),
        Figure("control input->bridge p99", control["p99_ms"], "ms"),
    ]


# -------------------------------------------------------------------------- weights_swap
# Issue 5: loading a bundle must not raise the loop's lateness p99 above the figure without
# swaps by more than "a few ms"; this report reads "a few" as 3.
FEW_MS = 3.0


def weights_swap(records: list[Record]) -> list[Figure]:
    base, swapping = one(records, phase="without_swaps"), one(records, phase="with_swaps")
    loading, swaps = one(records, phase="while_loading"), one(records, phase="swaps")
    if not swaps["swaps"]:
        raise ValueError("no bundle was loaded in the phase with swaps")
    base_p99 = base["lateness_p99_ms"]
    limit = bound("<=", base_p99 + FEW_MS, "ms", f"no-swap p99 + {FEW_MS:g} ms")
    figures = [
        Figure("lateness p99, without swaps", base_p99, "ms"),
        Figure("lateness p99, with swaps", swapping["lateness_p99_ms"], "ms", limit),
        Figure("ticks over the period, with swaps", swapping["over_period"], "ticks"),
        Figure("bundles loaded", swaps["swaps"], f"(every {swaps['every_s']:g} s)"),
        Figure("bundle load time p50", swaps["load_p50_ms"], "ms"),
        Figure("ticks while a bundle loaded", loading["ticks"], "ticks"),
    ]
    if loading["ticks"]:
        figures.append(Figure("lateness p99, while loading", loading["lateness_p99_ms"], "ms"))
    return figures


# -------------------------------------------------------------------- learner_throughput
PIXEL_TARGET = 300.0  # docs/learner.md: the H200 goal, pixel reference config


def learner_throughput(records: list[Record]) -> list[Figure]:
    if not records:
        raise ValueError("no config records")
    figures = []
    for r in records:
        target = None
        if r["config"] == "pixel" and r["device"] == "cuda":
            target = bound(">=", PIXEL_TARGET, "updates/s", "H200")
        elif r["config"] == "pixel":
            target = Target(f">= {PIXEL_TARGET:g} updates/s on an H200 (CUDA only)")
        where = r["gpu"] or r["device"]
        name = f"critic updates/s, {r['config']} config"
        figures.append(Figure(name, r["critic_updates_per_s"], f"on {where}", target))
    return figures


# --------------------------------------------------------------------------- train_speed
TRAIN_SPEEDUP = 4.0  # issue 13: the cpu profile trains at least 4x faster than before


def train_speed(records: list[Record]) -> list[Figure]:
    """Env steps/s of ``tandem train`` per variant; head / base against 4x (issue 13)."""
    runs = [r for r in records if r["variant"] != "speedup"]
    if not any(r["variant"] == "head" for r in runs):
        raise ValueError("no head record")
    figures = [
        Figure(f"env steps/s, {r['variant']} ({r['rev']})", r["env_steps_per_s"],
               f"{r['profile']} profile, {r['env']}")
        for r in runs
    ]  # fmt: skip
    for r in records:
        if r["variant"] == "speedup":
            figures.append(Figure("speedup, head / base", r["head / base"], "x",
                                  bound(">=", TRAIN_SPEEDUP, "x", "issue 13")))  # fmt: skip
    return figures


# --------------------------------------------------------------------- sample_efficiency
def sample_efficiency(records: list[Record]) -> list[Figure]:
    """Per (task, method): mean final success over seeds; the profile's IBRL method against
    0.9 and against BC and RLPD plus 0.2 (issue 12)."""
    final = {(r["env"], r["method"]): r for r in records}
    if not any(r["default_ibrl"] for r in records) or not any(m == "bc" for _, m in final):
        raise ValueError(f"need the default IBRL method and bc, have {sorted(final)}")
    figures = []
    for (env, method), r in sorted(final.items()):
        target = bound(">=", 0.9, why="issue 12") if r["default_ibrl"] else None
        figures.append(
            Figure(f"mean success at the end, {env}, {method}", r["success_mean"],
                   f"at {r['env_step']} env steps, {r['seeds']} seeds", target)
        )  # fmt: skip
        if not r["default_ibrl"]:
            continue
        others = [final[(env, m)]["success_mean"] for m in ("bc", "rlpd") if (env, m) in final]
        margin = r["success_mean"] - max(others)
        figures.append(
            Figure(f"{method} minus the best of bc and rlpd, {env}", margin, "success",
                   bound(">=", 0.2, why="issue 12"))
        )  # fmt: skip
    return figures


# ------------------------------------------------------------------------- command_flood
def command_flood(records: list[Record]) -> list[Figure]:
    """Issue 17: under a flood the loop keeps its rate, p99 lateness < 10 ms, e-stop in 1 tick."""
    quiet, flood = one(records, phase="quiet"), one(records, phase="flood")
    rate = flood["rate_hz"]
    return [
        Figure("tick rate, command flood", flood["tick_rate_hz"], "Hz",
               bound(">=", 0.98 * rate, "Hz", f"{rate:g} Hz kept")),
        Figure("lateness p99, command flood", flood["lateness_p99_ms"], "ms",
               bound("<", 10, "ms", "issue 17")),
        Figure("e-stop latency max, command flood", flood["estop_ticks_max"], "ticks",
               bound("<=", 1, "ticks", "issue 17")),
        Figure("e-stop latency max (ms), command flood", flood["estop_ms_max"], "ms"),
        Figure("e-stop latency max, quiet", quiet["estop_ticks_max"], "ticks"),
    ]  # fmt: skip


# -------------------------------------------------------------------------------- faults
NONE_LOST = bound("<=", 0, why="issue 17")


def faults(records: list[Record]) -> list[Figure]:
    """Issue 17: every fault survived, no episode lost or damaged, an interrupted episode
    loses at most one flush interval of steps."""
    episodes = one(records, fault="episodes")
    kinds = [r for r in records if r["fault"] != "episodes"]
    allowance = bound("<=", episodes["allowance"], "steps", "one flush interval")
    return [
        *(Figure(f"lost, {r['fault']}", r["lost"], f"of {r['tried']} tried", NONE_LOST)
          for r in kinds),
        Figure("faults tried", sum(r["tried"] for r in kinds), "faults"),
        Figure("faults lost", sum(r["lost"] for r in kinds), "faults", NONE_LOST),
        Figure("problems found", episodes["problems"], "problems", NONE_LOST),
        Figure("finished episodes", episodes["finished"], "episodes"),
        Figure("episodes lost or damaged", episodes["damaged"], "episodes", NONE_LOST),
        Figure("most steps lost by an interrupted episode", episodes["max_lost_interrupted"],
               "steps", allowance),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- offline_rl
def offline_rl(records: list[Record]) -> list[Figure]:
    """Issue 15: SRPO >= BC + 0.2 and >= IQL on mixed data; >= 25x faster than DDPM."""
    runs = [r for r in records if r["kind"] == "success"]
    if not any(r["method"] == "srpo" for r in runs):
        raise ValueError("no srpo records")
    figures = []
    for r in sorted(runs, key=lambda r: (r["env"], r["method"])):
        unit = f"success, {r['seeds']} seeds"
        figures.append(Figure(f"mean success, {r['env']}, {r['method']}", r["success_mean"], unit))
        if r["method"] == "srpo":
            figures += [
                Figure(f"srpo minus bc, {r['env']}", r["margin_vs_bc"], "success",
                       bound(">=", 0.2, why="issue 15")),
                Figure(f"srpo minus iql, {r['env']}", r["margin_vs_iql"], "success",
                       bound(">=", 0, why="issue 15")),
            ]  # fmt: skip
    policy = one(records, kind="timing", sampler="srpo policy")
    figures.append(Figure("act time, srpo policy", policy["ms"], "ms/action"))
    for r in records:
        if r["kind"] == "timing" and r["sampler"] != "srpo policy":
            target = bound(">=", 25, "x", "issue 15") if r["sampler"].startswith("DDPM") else None
            figures.append(Figure(f"act time vs srpo, {r['sampler']} ({r['steps']} steps)",
                                  r["speedup_vs_srpo"], "x", target))  # fmt: skip
    return figures


# --------------------------------------------------------------------------- uncertainty
UNSURE_AUC = bound(">=", 0.7, why="issue 14")
UNSURE_FROM_STEP = 15  # the target is read from t = 15 on (a successful rollout's median is 11)


def uncertainty(records: list[Record]) -> list[Figure]:
    """Issue 14: the chosen signal's ROC AUC for a failed rollout >= 0.7 (running@t, t >= 15);
    the other candidates at the last t, for comparison."""
    summary = one(records, summary=True)
    chosen = summary["chosen"]
    running = [r for r in records if r.get("aggregate") == "running"]
    last = max(r["t"] for r in running)
    unit = f"AUC, {summary['episodes']} rollouts ({summary['successes']} successes)"
    figures = []
    for r in sorted(running, key=lambda r: (r["signal"] != chosen, r["signal"], r["t"])):
        if r["signal"] == chosen:
            target = UNSURE_AUC if r["t"] >= UNSURE_FROM_STEP else None
            figures.append(Figure(f"{chosen} (chosen), running@{r['t']}", r["auc"], unit, target))
        elif r["t"] == last and r["signal"] != "step":
            figures.append(Figure(f"{r['signal']}, running@{r['t']}", r["auc"], unit))
    if not any(f.name.startswith(f"{chosen} (chosen)") for f in figures):
        raise ValueError(f"no running@t record of the chosen signal {chosen}")
    return figures


# -------------------------------------------------------------------------------- dagger
def dagger(records: list[Record]) -> list[Figure]:
    """Issue 14 asks for a plot (docs/dagger.png), no target: each method's mean success at
    the label budget all of them reached, and at its last point."""
    if not any(r["method"] == "dagger" for r in records):
        raise ValueError("no dagger record")
    figures = []
    for r in sorted(records, key=lambda r: r["method"]):
        where = f"{r['env']}, {r['method']}"
        figures += [
            Figure(f"success at the common label budget, {where}", r["success_at_common"],
                   f"at {r['common_labels']} expert labels, {r['seeds']} seeds"),
            Figure(f"success at the last point, {where}", r["final_success"],
                   f"at {r['final_labels']:.0f} expert labels (mean)"),
        ]  # fmt: skip
    return figures


# --------------------------------------------------------------------------- il_variants
def il_variants(records: list[Record]) -> list[Figure]:
    """Issue 14: per (task, kind) BC and IBRL success and act latency; GMM and diffusion BC
    >= MSE BC + 0.3 on sim:detour, IBRL with GMM or diffusion >= IBRL with MSE on every task,
    every kind's act p99 < 20 ms."""
    runs = {(r["env"], r["kind"]): r for r in records if r["kind_row"] == "success"}
    if not any(kind == "mse" for _, kind in runs):
        raise ValueError(f"need the mse kind, have {sorted(runs)}")
    figures = []
    for (env, kind), r in sorted(runs.items()):
        unit = f"success, {r['seeds']} seeds"
        figures += [
            Figure(f"bc success, {env}, {kind}", r["bc_mean"], unit),
            Figure(f"ibrl success at {r['env_step']} env steps, {env}, {kind}", r["ibrl_mean"],
                   unit),
        ]  # fmt: skip
        mse = runs.get((env, "mse"))
        if mse is not None and kind in ("gmm", "diffusion"):
            if env == "sim:detour":
                figures.append(Figure(f"bc {kind} minus bc mse, {env}",
                                      r["bc_mean"] - mse["bc_mean"], "success",
                                      bound(">=", 0.3, why="issue 14")))  # fmt: skip
            figures.append(Figure(f"ibrl {kind} minus ibrl mse, {env}",
                                  r["ibrl_mean"] - mse["ibrl_mean"], "success",
                                  bound(">=", 0, why="issue 14, gmm or diffusion")))  # fmt: skip
    for r in records:
        if r["kind_row"] == "latency":
            worst = max(r["il_p99_ms"], r["ibrl_p99_ms"])
            figures.append(Figure(f"act p99 (IL alone / IBRL, worse), {r['env']}, {r['kind']}",
                                  worst, "ms", bound("<", 20, "ms", "issue 14")))  # fmt: skip
    return figures


# --------------------------------------------------------------------------- exploration
def exploration(records: list[Record]) -> list[Figure]:
    """Issue 16: reward-free Proto-RL visits >= 2x the end-effector voxels (2 cm) of uniformly
    random actions in the same env steps; object-displacement coverage reported beside it."""
    s = one(records, summary=True)
    unit = f"{s['seeds']} seeds"
    return [
        Figure("ee voxels, random actions", s["random_ee_voxels"], f"voxels, {unit}"),
        Figure("ee voxels, proto-rl", s["proto_ee_voxels"], f"voxels, {unit}"),
        Figure("ee voxels, proto-rl / random", s["voxel_ratio"], "x",
               bound(">=", s["target_ratio"], "x", "issue 16")),
        Figure("ee voxels, one new per step / random", s["ceiling_ratio"], "x"),
        Figure("object displacement cells, random actions", s["random_object_cells"], "cells"),
        Figure("object displacement cells, proto-rl", s["proto_object_cells"], "cells"),
        Figure("episodes moving the object, random actions", s["random_object_moved_frac"],
               "fraction"),
        Figure("episodes moving the object, proto-rl", s["proto_object_moved_frac"], "fraction"),
    ]  # fmt: skip


SUITE = [
    Bench("bridge_timing", bridge_timing, "--seconds 1", "--seconds 10", "--seconds 20"),
    Bench("sim_render", sim_render, "--steps 20", "--steps 300", "--steps 300"),
    Bench(
        "recorder_throughput",
        recorder_throughput,
        smoke="--episodes 1 --steps 20 --paced-seconds 1",
        quick="",  # the defaults take about 15 s
    ),
    Bench(
        "server_latency",
        server_latency,
        smoke="--seconds 1 --viewers 1 16 --probes 20",
        quick="--seconds 3 --probes 150",
    ),
    Bench("weights_swap", weights_swap, smoke="--seconds 1", quick="--seconds 10"),
    Bench("command_flood", command_flood, "--seconds 1 --estop-every 0.5", "--seconds 5"),
    Bench(
        "faults",
        faults,
        smoke="--kills 0 --stops 0 --garbage 0",  # start, record an episode, stop, check
        quick="--kills 2 --stops 1 --garbage 1",
        timeout_s={"smoke": 120, "quick": 600, "full": 3600},
    ),
    Bench(
        "learner_throughput",
        learner_throughput,
        smoke="--configs state --iters 1 --warmup 0",
        quick="--configs state --iters 2 --warmup 1",
    ),
    Bench(
        "train_speed",
        train_speed,
        smoke="--base none --variants head --steps 100 --skip 0 --log-every 50 --demos 2 "
        "--bc-steps 20 --rounds 1",
        quick="--steps 2000 --rounds 1",
        timeout_s={"smoke": 60, "quick": 900, "full": 3600},
    ),
    Bench(
        "sample_efficiency",
        sample_efficiency,
        smoke="--steps 100 --demos 2 --eval-every 100 --eval-episodes 2 --bc-steps 50 "
        "--envs sim:lift --seeds 0 --methods ibrl,bc --out {tmp}",
        quick="",
        full="--out {tmp}",
        skip={"quick": "24 runs of 10k env steps (3 seeds x 4 methods x 2 tasks): about 2 h"},
        timeout_s={"smoke": 90, "full": 4 * 3600},
    ),
    Bench(
        "il_variants",
        il_variants,
        smoke="--envs sim:detour --kinds mse,gmm --seeds 0 --demos 2 --bc-steps 10 --steps 60 "
        "--eval-episodes 1 --latency-reps 10 --out {tmp}",
        quick="--envs sim:detour --seeds 0 --demos 40 --bc-steps 1000 --steps 400 "
        "--eval-episodes 10 --latency-reps 200 --out {tmp}",
        full="--out {tmp}",  # 30 IBRL runs of 4000 env steps: 3-12 min each on 2 cores
        timeout_s={"smoke": 90, "quick": 900, "full": 6 * 3600},
    ),
    Bench(
        "offline_rl",
        offline_rl,
        smoke="--envs sim:lift --seeds 0 --mix expert:2,random:1 --critic-steps 20 "
        "--behavior-steps 20 --policy-steps 20 --eval-episodes 2 --ddpm-steps 10 "
        "--timing-reps 3 --out {tmp}",
        quick="--envs sim:lift --seeds 0 --critic-steps 1000 --behavior-steps 1000 "
        "--policy-steps 500 --eval-episodes 10 --out {tmp}",
        full="--out {tmp}",
        timeout_s={"smoke": 90, "quick": 600, "full": 3 * 3600},
    ),
    Bench(
        "uncertainty",
        uncertainty,
        smoke="--untrained --episodes 6 --time-limit 20 --at 5 --window 3 --first 5 --explore "
        "--out {tmp}",
        quick="--episodes 150 --explore --out {tmp}",
        full="--episodes 300 --explore --out {tmp}",
        timeout_s={"smoke": 90, "quick": 600, "full": 1800},
    ),
    Bench(
        "dagger",
        dagger,
        smoke="--bc-demos 1 --start-demos 1 --dagger-steps 20 --hg-steps 20 "
        "--episodes-per-round 1 --eval-episodes 1 --bc-steps 20 --seeds 0 "
        "--methods bc,dagger,hg_dagger --out {tmp}",
        quick="--seeds 0 --bc-demos 1,4,16 --dagger-steps 150 --hg-steps 150 --eval-episodes 10 "
        "--out {tmp}",
        full="--out {tmp}",
        timeout_s={"smoke": 90, "quick": 900, "full": 2 * 3600},
    ),
    Bench(
        "exploration",
        exploration,
        smoke="--quick",
        quick="--steps 2000",
        full="--steps 10000",
        timeout_s={"smoke": 60, "quick": 600, "full": 3600},
    ),
]
