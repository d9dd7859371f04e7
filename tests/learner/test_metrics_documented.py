"""Every metric name the learners publish is documented in docs/metrics.md: names are
collected from real runs, not from a list.

* ``tandem train``: the keys of ``metrics.jsonl`` of a tiny IBRL run;
* the online learner: ``collect()`` after it pre-trained, trained, refitted and
  published (ingest thread running), i.e. exactly what it sends over ZMQ.

A documented name may hold a placeholder in angle brackets (``threads/<name>/errors``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from learner.service.assembly import EpisodeAssembler
from tandem.cli.main import main
from tandem.messages import EpisodeKind
from tests.learner.helpers import REPO
from tests.learner.service.test_service_trainer import _episode, _learner, _run_until
from tests.learner.test_learn_cli import CONFIG, TOY

DOCS = [REPO / "docs" / "metrics.md"]
NAME = re.compile(r"`([a-z][a-z0-9_]*(?:/[a-z0-9_<>]+)+)`")


def documented() -> list[re.Pattern[str]]:
    names = {m.group(1) for doc in DOCS for m in NAME.finditer(doc.read_text())}
    return [re.compile("^" + re.sub(r"<[a-z_]+>", "[^/]+", re.escape(n)) + "$") for n in names]


def undocumented(names: set[str]) -> list[str]:
    patterns = documented()
    return sorted(n for n in names if not any(p.match(n) for p in patterns))


@pytest.mark.timeout(240)
def test_tandem_train_metrics_are_documented(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    code = main(["train", *TOY, "--demos", str(_demos(tmp_path)), "--config", str(config),
                 "--method", "ibrl", "--steps", "100", "--eval-every", "100",
                 "--eval-episodes", "2", "--out", str(tmp_path / "run"),
                 "--log-level", "WARNING"])  # fmt: skip
    assert code == 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    names = {k for line in lines for k in json.loads(line)["metrics"]}
    assert "critic/loss" in names
    assert undocumented(names) == []


@pytest.mark.timeout(240)
def test_online_learner_metrics_are_documented(tmp_path: Path) -> None:
    learner = _learner(tmp_path)
    learner.start()
    asm = EpisodeAssembler()
    learner.deliveries.append(_episode(asm, "demo", 12, kind=EpisodeKind.DEMO))
    learner.deliveries.append(_episode(asm, "roll", 12, human=range(3, 9)))
    names: set[str] = set()

    def refitted() -> bool:  # snapshot while running: stopping closes ingest and the outbox
        names.update(learner.metrics()[2])
        return learner.progress.refits >= 1 and learner.num_updates >= 10

    _run_until(learner, refitted)
    assert {"hil/refits", "ingest/steps", "learner/state", "critic/loss"} <= names
    assert undocumented(names) == []


def _demos(tmp_path: Path) -> Path:
    out = tmp_path / "demos"
    code = main(["record-demos", *TOY, "--policy", "learner.toy_env:NoisyReachExpert",
                 "--policy-args", '{"speed": 1.0, "noise": 0.1}', "--episodes", "2",
                 "--out", str(out), "--seed", "3"])  # fmt: skip
    assert code == 0
    return out
