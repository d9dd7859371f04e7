import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tandem.episodes import (
    EpisodeFormatError,
    EpisodeMeta,
    EpisodeWriter,
    StepData,
    list_episodes,
    load_episode,
    read_meta,
    recover_partials,
)
from tandem.messages import StepRecord

ROOT = Path(__file__).resolve().parents[2]


def meta(episode_id: str = "ep1", **kw) -> EpisodeMeta:
    base = dict(
        robot_id="r0",
        episode_id=episode_id,
        kind="demo",
        cameras=["front"],
        image_shape=[8, 8, 3],
        state_dim=4,
    )
    return EpisodeMeta(**{**base, **kw})


def step(i: int, intervention: bool = False, reward: float = 0.0) -> StepData:
    return StepData(
        state=np.full(4, i, np.float32),
        action=np.full(7, i / 10, np.float32),
        images={"front": np.full((8, 8, 3), i, np.uint8)},
        intervention=intervention,
        reward=reward,
        step=i,
        seq=100 + i,
    )


def test_finished_episode_round_trips(tmp_path: Path):
    writer = EpisodeWriter(tmp_path, meta(), flush_every_s=0)
    for i in range(6):
        writer.append(step(i, intervention=i in (2, 3), reward=float(i == 5)))
    path = writer.finish({"state": np.zeros(4, np.float32)}, outcome="success", terminated=True)
    assert path == tmp_path / "r0" / "ep1"
    episode = load_episode(path)
    assert len(episode) == 6
    np.testing.assert_array_equal(episode.steps["state"][:, 0], np.arange(6))
    assert episode.images["front"].shape == (6, 8, 8, 3)
    assert episode.steps["seq"].tolist() == list(range(100, 106))
    assert np.isnan(episode.steps["policy_action"]).all()
    assert episode.meta.interventions == [(2, 4)]
    assert episode.meta.complete and episode.meta.outcome == "success"
    assert episode.meta.episode_return == 1.0
    assert "state" in episode.final


def test_from_record_keeps_every_field():
    rec = StepRecord(
        seq=7,
        robot_id="r0",
        episode_id="e",
        episode_kind="rollout",
        step=3,
        mode="intervention",
        state=[1.0] * 4,
        action=[0.2] * 7,
        human_action=[0.2] * 7,
        action_source="human",
        intervention=True,
        reward=1.0,
        t_obs=5.0,
    )
    data = StepData.from_record(rec, {"front": np.zeros((8, 8, 3), np.uint8)})
    assert data.seq == 7 and data.intervention and data.policy_action is None
    np.testing.assert_allclose(data.human_action, [0.2] * 7)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(state=np.zeros(5, np.float32)), "state shape"),
        (dict(images={}), "cameras"),
        (dict(images={"front": np.zeros((8, 8, 3), np.float32)}), "camera 'front'"),
    ],
)
def test_writer_refuses_inconsistent_steps(tmp_path: Path, bad, message):
    writer = EpisodeWriter(tmp_path, meta(), flush_every_s=0)
    good = step(0)
    with pytest.raises(EpisodeFormatError, match=message):
        writer.append(StepData(**{**good.__dict__, **bad}))


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_ids_cannot_escape_the_root(tmp_path: Path, name: str):
    with pytest.raises(EpisodeFormatError, match="must match"):
        EpisodeWriter(tmp_path, meta(episode_id=name))


def test_existing_episode_is_never_overwritten(tmp_path: Path):
    EpisodeWriter(tmp_path, meta(), flush_every_s=0).finish()
    with pytest.raises(EpisodeFormatError, match="already exists"):
        EpisodeWriter(tmp_path, meta())


def test_recovery_keeps_flushed_steps_and_marks_incomplete(tmp_path: Path):
    done = EpisodeWriter(tmp_path, meta("done"), flush_every_s=0)
    done.append(step(0))
    done_path = done.finish()
    before = _digest(done_path)
    writer = EpisodeWriter(tmp_path, meta("cut"), flush_every_s=1e9)
    for i in range(3):
        writer.append(step(i, intervention=True))
    writer.flush()
    writer.append(step(3))  # never flushed: lost in the crash
    (writer.dir / "chunk_000001.npz.tmp").write_bytes(b"half a file")
    recovered = recover_partials(tmp_path)
    assert recovered == [tmp_path / "r0" / "cut"]
    episode = load_episode(recovered[0])
    assert len(episode) == 3
    assert not episode.meta.complete and episode.meta.end_reason == "interrupted"
    assert episode.meta.interventions == [(0, 3)]
    assert _digest(done_path) == before
    assert [p.name for p in list_episodes(tmp_path)] == ["done", "cut"]


def test_unreadable_files_raise_the_format_error(tmp_path: Path):
    path = EpisodeWriter(tmp_path, meta(), flush_every_s=0).finish()
    (path / "meta.json").write_text("{broken")
    with pytest.raises(EpisodeFormatError, match="invalid metadata"):
        read_meta(path)
    with pytest.raises(EpisodeFormatError, match=r"no meta\.json"):
        load_episode(tmp_path)


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from tandem.episodes import EpisodeMeta, EpisodeWriter, StepData
    meta = EpisodeMeta(robot_id="r0", episode_id="live", kind="rollout", cameras=["front"],
                       image_shape=[8, 8, 3], state_dim=4)
    writer = EpisodeWriter(sys.argv[1], meta, flush_every_s=0.05)
    i = 0
    while True:
        writer.append(StepData(state=np.full(4, i, np.float32), action=np.zeros(7, np.float32),
                               images={"front": np.zeros((8, 8, 3), np.uint8)}, step=i))
        if i == 20:
            print("flushed", flush=True)
        i += 1
    """
)


@pytest.mark.timeout(60)
def test_kill_9_mid_write_loses_at_most_the_unflushed_steps(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    [path] = recover_partials(tmp_path)
    episode = load_episode(path)
    assert len(episode) > 0
    np.testing.assert_array_equal(episode.steps["state"][:, 0], np.arange(len(episode)))
    assert episode.steps["step"].tolist() == list(range(len(episode)))
