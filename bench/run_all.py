"""Run every benchmark under bench/ and print one report: the machine, then a table of figures.

    python bench/run_all.py --quick                  # rough figures, 2-5 min on 2 cores
    python bench/run_all.py                          # full: about an hour (sample_efficiency)
    python bench/run_all.py --only sim_render,server_latency --json report.json

Each script runs in its own process (``sys.executable bench/NAME.py --json ...``), so one
that crashes does not stop the others: it gets a row saying that it failed and why, and
run_all exits with status 1 at the end. What each preset passes to each script, the
figures read from its JSON lines and their targets are in bench/_suite.py. Progress goes
to stderr, the report to stdout (markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _suite import SUITE, Bench, Figure, Record

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
NO_TARGET = "none (reported)"


@dataclass
class Row:
    """One line of the report. ``status`` is ok, failed or skipped; ``note`` says why."""

    benchmark: str
    figure: str
    value: float | None = None
    unit: str = ""
    target: str = NO_TARGET
    met: bool | None = None
    status: str = "ok"
    note: str = ""

    @classmethod
    def of(cls, benchmark: str, fig: Figure) -> Row:
        if fig.target is None:
            return cls(benchmark, fig.name, fig.value, fig.unit)
        met = None if fig.target.check is None else fig.target.check(fig.value)
        return cls(benchmark, fig.name, fig.value, fig.unit, fig.target.text, met)


class BenchError(Exception):
    """A script exited with an error, ran out of time or printed records without its figures."""


# -------------------------------------------------------------------------- the machine
def read_field(path: str, key: str, sep: str) -> str | None:
    """The value of the first ``key<sep>value`` line of a /proc or /etc file, if any."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, found, value = line.partition(sep)
        if found and name.strip() == key:
            return value.strip().strip('"')
    return None


def torch_info() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"{torch.__version__}, CUDA not available"
    return f"{torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else "")


def machine(env: dict[str, str]) -> dict[str, str]:
    """What the figures were measured on, one line per item."""
    import mujoco

    mem_kb = (read_field("/proc/meminfo", "MemTotal", ":") or "0 kB").split()[0]
    os_name = read_field("/etc/os-release", "PRETTY_NAME", "=") or platform.system()
    cpu = read_field("/proc/cpuinfo", "model name", ":") or platform.processor() or "unknown"
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": f"{int(mem_kb) / 2**20:.1f} GiB",
        "OS": f"{os_name}, kernel {platform.release()} ({platform.machine()})",
        "Python": platform.python_version(),
        "torch": torch_info(),
        "MuJoCo": f"{mujoco.__version__}, MUJOCO_GL={env['MUJOCO_GL']}",
        "git commit": git_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# ---------------------------------------------------------------------------- running
def run_script(bench: Bench, preset: str, env: dict[str, str]) -> list[Record]:
    """Run one script with --json; its JSON records. Raises BenchError."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.name}-") as tmp:
        args = [arg.replace("{tmp}", tmp) for arg in bench.args(preset)]
        cmd = [sys.executable, str(BENCH_DIR / f"{bench.name}.py"), "--json", *args]
        stdout, stderr, code = communicate(cmd, env, bench.timeout_s[preset])
    if code != 0:
        raise BenchError(f"exit status {code}: {last_line(stderr)}")
    records = []
    for line in stdout.splitlines():
        if line.lstrip().startswith("{"):
            records.append(json.loads(line))
    return records


def communicate(cmd: list[str], env: dict[str, str], timeout_s: float) -> tuple[str, str, int]:
    """Run ``cmd`` in its own process group, which is killed whole if it runs out of time."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout_s:g} s") from exc
    finally:
        if proc.poll() is None:  # timed out or interrupted: take its children down too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return stdout, stderr, proc.returncode


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output on stderr)"


def bench_rows(name: str, preset: str, env: dict[str, str]) -> list[Row]:
    """The report's rows for one script: its figures, or one row saying why there are none."""
    bench = next((b for b in SUITE if b.name == name), None)
    if bench is None:
        return [failed(name, "no entry in bench/_suite.py: add one so run_all reads it")]
    if preset in bench.skip:
        why = f"skipped in --{preset}: {bench.skip[preset]}"
        return [Row(name, why, target="-", status="skipped")]
    try:
        records = run_script(bench, preset, env)
        return [Row.of(name, fig) for fig in bench.figures(records)]
    except BenchError as exc:
        return [failed(name, str(exc))]
    except (KeyError, ValueError, TypeError) as exc:  # the records lack a figure
        return [failed(name, f"output without its figures: {exc!r}")]


def failed(name: str, why: str) -> Row:
    return Row(name, "FAILED", target="-", met=False, status="failed", note=why)


# ---------------------------------------------------------------------------- report
def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e6:
        text = str(int(value))
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def format_met(row: Row) -> str:
    if row.status == "skipped" or row.target == NO_TARGET:
        return "-"
    return {True: "yes", False: "**no**", None: "n/a"}[row.met]


def markdown(preset: str, info: dict[str, str], rows: list[Row], seconds: dict[str, float]) -> str:
    lines = [f"# Tandem benchmark report (preset: {preset})", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += ["", "| benchmark | figure | value | target | met? |", "|---|---|---|---|---|"]
    for r in rows:
        figure = f"FAILED: {r.note}" if r.status == "failed" else r.figure
        figure = figure.replace("|", "/")
        value = format_value(r.value, r.unit)
        lines.append(f"| {r.benchmark} | {figure} | {value} | {r.target} | {format_met(r)} |")
    took = ", ".join(f"{name} {secs:.0f} s" for name, secs in seconds.items())
    lines += ["", f"Run time: {sum(seconds.values()):.0f} s ({took})."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def discover() -> list[str]:
    """Every benchmark script under bench/ (helpers start with an underscore), in SUITE order."""
    tools = {Path(__file__).stem, "compare"}  # scripts that run benchmarks, not benchmarks
    names = [p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in tools and p.stem[0] != "_"]
    order = [b.name for b in SUITE]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def parse_args(names: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short runs: about 2-5 min on 2 cores")
    smoke = "seconds per script: only checks that each still runs and prints its figures"
    size.add_argument("--smoke", action="store_true", help=smoke)
    p.add_argument("--only", help=f"comma-separated subset of: {','.join(names)}")
    p.add_argument("--json", type=Path, help="also write the report as JSON to this path")
    args = p.parse_args()
    args.preset = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.names = names if args.only is None else args.only.split(",")
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        p.error(f"no benchmark named {', '.join(unknown)} (have {', '.join(names)})")
    return args


def main() -> int:
    args = parse_args(discover())
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    info = machine(env)
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    for i, name in enumerate(args.names, start=1):
        print(f"[{i}/{len(args.names)}] {name} (--{args.preset}) ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        got = bench_rows(name, args.preset, env)
        seconds[name] = time.monotonic() - t0
        print(f"    {seconds[name]:.0f} s, {got[0].status}", file=sys.stderr, flush=True)
        rows += got
    print(markdown(args.preset, info, rows, seconds))
    if args.json is not None:
        report: dict[str, Any] = {"preset": args.preset, "machine": info, "seconds": seconds,
                                  "rows": [asdict(r) for r in rows]}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
