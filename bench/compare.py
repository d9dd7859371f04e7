"""Before and after in one run: the same benchmarks on an older commit and on this checkout.

    python bench/compare.py --base 3ba65bf --only recorder_throughput,server_latency,bridge_timing
    python bench/compare.py --base main~3 --quick --rounds 2

The base commit is checked out into a temporary git worktree (removed at the end).
Each benchmark runs through ``run_all.py --json`` in the base tree, then in this
checkout, alternating benchmark by benchmark and round by round, so both see the
same machine load. The report gives each figure's median over the rounds for
base and head, and head / base. Whether higher is better depends on the figure
(a rate: higher; a latency: lower), so read the unit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
Key = tuple[str, str]  # (benchmark, figure)


def run_all(tree: Path, name: str, preset: str) -> list[dict]:
    """The rows ``run_all.py`` of ``tree`` reports for one benchmark."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(tree / "bench" / "run_all.py"), "--only", name]
        cmd += [f"--{preset}"] if preset != "full" else []
        cmd += ["--json", out.name]
        subprocess.run(cmd, cwd=tree, stdout=subprocess.DEVNULL, check=False)
        text = Path(out.name).read_text()
    return json.loads(text)["rows"] if text else []


def collect(trees: dict[str, Path], names: list[str], preset: str, rounds: int) -> dict:
    """{tree label: {(benchmark, figure): [values]}}, with units in ``units``."""
    values: dict[str, dict[Key, list[float]]] = {label: defaultdict(list) for label in trees}
    units: dict[Key, str] = {}
    for r in range(rounds):
        for name in names:
            for label, tree in trees.items():
                print(f"round {r + 1}/{rounds}: {name} on {label}", file=sys.stderr, flush=True)
                for row in run_all(tree, name, preset):
                    if row["status"] == "ok" and row["value"] is not None:
                        key = (row["benchmark"], row["figure"])
                        values[label][key].append(float(row["value"]))
                        units[key] = row["unit"]
    return {"values": values, "units": units}


def report(base: str, head: str, data: dict) -> str:
    values, units = data["values"], data["units"]
    lines = [f"| benchmark | figure | base {base} | head {head} | head / base |"]
    lines.append("|---|---|---|---|---|")
    for key in sorted(units):
        b, h = values["base"].get(key), values["head"].get(key)
        mb = statistics.median(b) if b else None
        mh = statistics.median(h) if h else None
        ratio = f"{mh / mb:.2f}" if mb and mh is not None else "-"
        unit = units[key]
        show = [f"{v:.4g} {unit}".strip() if v is not None else "missing" for v in (mb, mh)]
        lines.append(f"| {key[0]} | {key[1]} | {show[0]} | {show[1]} | {ratio} |")
    return "\n".join(lines)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True)
    return done.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", required=True, help="the commit to compare against")
    p.add_argument("--only", required=True, help="comma-separated benchmark names")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    preset = "smoke" if args.smoke else "quick" if args.quick else "full"
    base_rev = git("rev-parse", "--short", args.base).strip()
    head_rev = git("rev-parse", "--short", "HEAD").strip()
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        git("worktree", "add", "--detach", str(base_tree), base_rev)
        try:
            trees = {"base": base_tree, "head": REPO}
            data = collect(trees, args.only.split(","), preset, args.rounds)
        finally:
            git("worktree", "remove", "--force", str(base_tree))
    print(report(base_rev, f"{head_rev} (working tree)", data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
