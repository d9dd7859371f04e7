"""``tandem demo-operator --eval-every K --eval-episodes N`` against the real server and a real
sim bridge process (expert policy, faster than real time): an evaluation batch runs after
every K rollouts, the sim resets itself between its episodes, and the results are stored."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import create_app
from tandem.settings import load_settings
from tests.polling import free_port, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data"
    pub, cmd = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
        "TANDEM_DATA_DIR": str(data), "TANDEM_BRIDGE__SEED": "0",
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
    }  # fmt: skip
    log = (tmp_path / "bridge.log").open("wb")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "tandem", "bridge", "--robot", "sim:lift", "--policy", "expert",
         "--pub", pub, "--cmd", cmd, "--rate", "40"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    settings = load_settings(
        data_dir=data,
        server={"host": "127.0.0.1", "port": port, "bridges": [pub], "bridge_cmd_endpoints": [cmd],
                "learner_metrics_endpoint": "", "web_dir": str(tmp_path / "none")},
    )  # fmt: skip
    app = create_app(settings)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: uv.started, 30, "the server")
        wait_for(app.state.tandem.link.robots, 90, "the sim bridge's first status")
        yield {"url": f"http://127.0.0.1:{port}", "data": data, "store": app.state.tandem.store,
               "bridge_log": tmp_path / "bridge.log"}  # fmt: skip
    finally:
        uv.should_exit = True
        thread.join(15)
        bridge.terminate()
        bridge.wait(15)
        log.close()


def test_demo_operator_runs_an_eval_batch_after_every_k_rollouts(server: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env["TANDEM_DATA_DIR"] = str(server["data"])
    done = subprocess.run(
        [sys.executable, "-m", "tandem", "demo-operator", "--url", server["url"], "--demos", "0",
         "--rollouts", "2", "--eval-every", "1", "--eval-episodes", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("evaluation after")]
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith("evaluation after 1 rollouts: 2/2 autonomous successes")
    assert lines[1].startswith("evaluation after 2 rollouts: 2/2 autonomous successes")
    kinds = [line.split()[1] for line in done.stdout.splitlines()[1:] if line.count(" ") > 4]
    assert kinds[:6] == [
        "rollout",
        "evaluation",
        "evaluation",
        "rollout",
        "evaluation",
        "evaluation",
    ]

    token = server["store"].auth.issue_token(
        server["store"].auth.get_operator("scripted-operator").id, 60
    )
    api = httpx.Client(base_url=server["url"], headers={"Authorization": f"Bearer {token}"})

    def stored() -> Any:
        batches = api.get("/api/evals").raise_for_status().json()
        return len(batches) == 2 and all(b["episodes"] == 2 for b in batches) and batches

    batches = wait_for(stored, 20, "two stored batches of 2 episodes")
    assert [b["successes"] for b in batches] == [2, 2]
    episodes = api.get("/api/episodes?kind=evaluation").json()["items"]
    assert len(episodes) == 4 and {e["result"] for e in episodes} == {"autonomous_success"}
    assert {e["intervention_steps"] for e in episodes} == {0}
    # Nobody pressed reset done: the sim reset itself between the evaluation episodes.
    bridge_log = server["bridge_log"].read_text()
    assert bridge_log.count("next evaluation episode (the robot resets itself)") == 2
    assert "reset_done" not in bridge_log
    assert len(api.get("/api/episodes?kind=rollout").json()["items"]) == 2
