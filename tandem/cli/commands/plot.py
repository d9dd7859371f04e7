"""``tandem plot RUN_DIR...``: success against env steps of ``tandem train`` runs, as a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot success rate against env steps of tandem train runs (seeds grouped)",
        description="Each RUN_DIR is a tandem train run or a folder searched for runs. Runs of "
        "the same env and method are one curve: the mean over seeds, with the min-max band.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, default=Path("success.png"), help="PNG to write")
    p.add_argument("--title", default="success rate against env steps")
    p.set_defaults(func=_plot)


def _plot(args: argparse.Namespace) -> int:
    from learner.plot import PlotError, find_runs, plot_success, read_run

    try:
        runs = find_runs(args.runs)
        rows = [row for run in runs for row in read_run(run)]
        if not rows:
            raise PlotError(f"the {len(runs)} run(s) found have no evaluation yet")
        plot_success(args.out, rows, args.title)
    except PlotError as exc:
        sys.stderr.write(f"tandem plot: {exc}\n")
        return EXIT_USAGE
    curves = sorted({(str(r["env"]), str(r["method"])) for r in rows})
    sys.stdout.write(
        f"{args.out}: {len(runs)} run(s), curves: "
        + ", ".join(f"{env} {method}" for env, method in curves) + "\n"
    )  # fmt: skip
    return 0
