"""The benchmark scripts keep working: ``bench/run_all.py --smoke`` runs every one for real.

Smoke mode gives each script a few seconds, so the figures mean nothing; what is checked
is that every script ran, printed its JSON records and that run_all read every figure it
expects from them. About a minute on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
LOADED = f"loaded x{os.cpu_count()}"

EXPECTED = {
    "bridge_timing": [
        "lateness p99, idle, no RT",
        "overruns, idle, no RT",
        f"lateness p99, {LOADED}, no RT",
        f"overruns, {LOADED}, no RT",
    ],
    "sim_render": [
        "physics+IK step (cameras=()), p99",
        "render 2 cameras, p99",
        "render 2 cameras + 2x JPEG, p99",
        "env.step with 2 cameras, p99",
        "env.step with 2 cameras + 2x JPEG, p50",
        "env.step with 2 cameras + 2x JPEG, p99",
    ],
    "recorder_throughput": [
        "max sustained throughput",
        "per-step handling latency p99",
        "max backlog, paced at 10 Hz",
        "steps lost (gaps + missing)",
        "malformed + errors",
    ],
    "server_latency": [
        "camera capture->send p99, 1 viewers",
        "camera capture->send p99, 16 viewers",
        "camera capture->receive p99, 16 viewers at 30 fps",
        "camera slowest client, 16 viewers at 30 fps",
        "control input->bridge p99",
    ],
    "weights_swap": [
        "lateness p99, without swaps",
        "lateness p99, with swaps",
        "ticks over the period, with swaps",
        "bundles loaded",
        "bundle load time p50",
        "ticks while a bundle loaded",
    ],
    "learner_throughput": ["critic updates/s, state config"],
    "train_speed": ["env steps/s, head (working tree)"],
    "command_flood": [
        "tick rate, command flood",
        "lateness p99, command flood",
        "e-stop latency max, command flood",
        "e-stop latency max (ms), command flood",
        "e-stop latency max, quiet",
    ],
    "faults": [
        "faults tried",
        "faults lost",
        "problems found",
        "finished episodes",
        "episodes lost or damaged",
        "most steps lost by an interrupted episode",
    ],
    "sample_efficiency": [
        "mean success at the end, sim:lift, ibrl",
        "mean success at the end, sim:lift, bc",
        "ibrl minus the best of bc and rlpd, sim:lift",
    ],
    "il_variants": [
        "bc success, sim:detour, mse",
        "bc success, sim:detour, gmm",
        "ibrl success at 60 env steps, sim:detour, gmm",
        "bc gmm minus bc mse, sim:detour",
        "ibrl gmm minus ibrl mse, sim:detour",
        "act p99 (IL alone / IBRL, worse), sim:detour, gmm",
    ],
    "offline_rl": [
        "mean success, sim:lift, srpo",
        "mean success, sim:lift, iql",
        "mean success, sim:lift, bc",
        "srpo minus bc, sim:lift",
        "srpo minus iql, sim:lift",
        "act time, srpo policy",
        "act time vs srpo, DDPM, trained denoiser (10 steps)",
        "act time vs srpo, DDIM, official size denoiser (10 steps)",
    ],
    "uncertainty": [
        "mc_dropout (chosen), running@5",
        "action_gap, running@5",
        "q_gap, running@5",
        "q_std, running@5",
    ],
    "exploration": [
        "ee voxels, random actions",
        "ee voxels, proto-rl",
        "ee voxels, proto-rl / random",
        "ee voxels, one new per step / random",
        "object displacement cells, random actions",
        "object displacement cells, proto-rl",
        "episodes moving the object, random actions",
        "episodes moving the object, proto-rl",
    ],
    "dagger": [
        f"success at the {point}, sim:lift, {method}"
        for point in ("common label budget", "last point")
        for method in ("bc", "dagger", "hg_dagger")
    ],
}


Smoke = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    out = tmp_path_factory.mktemp("bench") / "report.json"
    proc = subprocess.run(
        [sys.executable, "bench/run_all.py", "--smoke", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_smoke_run_gives_every_figure_of_every_script(smoke: Smoke) -> None:
    _, report = smoke
    rows = report["rows"]
    tools = {"run_all", "compare"}  # they run benchmarks; they are not benchmarks
    scripts = {p.stem for p in (REPO / "bench").glob("*.py") if p.stem[0] != "_"} - tools
    assert scripts == set(EXPECTED), "a new bench script needs its figures listed here"
    assert [r for r in rows if r["status"] != "ok"] == []
    got = {(r["benchmark"], r["figure"]): r["value"] for r in rows}
    for bench, figures in EXPECTED.items():
        for figure in figures:
            value = got.get((bench, figure))
            assert isinstance(value, int | float), f"{bench}: no numeric {figure!r}"
            assert math.isfinite(value), f"{bench}: {figure} = {value}"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_smoke_report_names_the_machine_and_has_one_table(smoke: Smoke) -> None:
    proc, report = smoke
    for item in ("CPU", "RAM", "OS", "Python", "torch", "MuJoCo", "git commit", "date"):
        assert report["machine"][item]
        assert f"- {item}: " in proc.stdout
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| benchmark | figure | value | target | met? |"
    assert len(table) == 1 + len(report["rows"])
