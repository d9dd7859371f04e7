"""Demonstrations on disk (``tandem.episodes`` format): recording with a scripted policy and
loading as replay-ready ``Segment``s (``learner.episode_arrays``, the type the online
learner uses too).

The episode format stores actions as 7-vectors (``tandem.messages.ACTION_DIM``); envs with
fewer action dimensions are zero-padded and ``meta.extra["action_dim"]`` records the true size.
The observation after the last action is saved as ``final.npz`` (keys ``state`` and cameras).
"""

from __future__ import annotations

import inspect
import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from learner.envs import CanonicalEnv, EnvSpec, sim_expert
from learner.episode_arrays import EpisodeArrays, Segment
from tandem.episodes import (
    Episode,
    EpisodeMeta,
    EpisodeWriter,
    StepData,
    list_episodes,
    load_episode,
)
from tandem.messages import ACTION_DIM, ActionSource, ControlMode, EpisodeKind, Outcome

log = logging.getLogger(__name__)

ScriptedPolicy = Callable[[Any], np.ndarray]


class DemoError(ValueError):
    """Demonstrations are missing, unusable or do not match the environment."""


def resolve_policy(text: str, env_spec: EnvSpec, policy_args: Any = None) -> ScriptedPolicy:
    """``expert`` (sim envs) or ``MODULE:ATTR``.

    ATTR may be a callable ``obs -> action``, an object with ``get_action(obs)``, a class
    (instantiated), or a factory: it is called to build the policy when ``policy_args`` is
    given (a JSON list/dict of arguments) or when it takes a ``task`` parameter and the env is
    ``sim:TASK`` (so ``sim:expert_for`` works).
    """
    if text == "expert":
        if env_spec.kind != "sim":
            raise DemoError("--policy expert is only defined for sim envs; give MODULE:ATTR")
        return _as_callable(sim_expert(env_spec.name))
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise DemoError(f"--policy must be MODULE:ATTR or expert, got {text!r}")
    import importlib

    try:
        obj: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise DemoError(f"cannot load policy {text!r}: {exc}") from None
    if policy_args is not None:
        args = policy_args if isinstance(policy_args, list) else []
        kwargs = policy_args if isinstance(policy_args, dict) else {}
        obj = obj(*args, **kwargs)
    elif inspect.isclass(obj):
        obj = obj()
    elif inspect.isfunction(obj) and "task" in inspect.signature(obj).parameters:
        if env_spec.kind != "sim":
            raise DemoError(f"{text} is a task factory; it needs a sim env or --policy-args")
        obj = obj(task=env_spec.name)
    return _as_callable(obj)


def _as_callable(obj: Any) -> ScriptedPolicy:
    if hasattr(obj, "get_action"):
        return obj.get_action  # type: ignore[no-any-return,unused-ignore]
    if callable(obj):
        return obj  # type: ignore[no-any-return,unused-ignore]
    raise DemoError(f"policy {obj!r} is neither callable nor has get_action(obs)")


def robot_id_for(env_spec: EnvSpec) -> str:
    """A path-safe robot id for an env spec, e.g. ``sim-lift``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{env_spec.kind}-{env_spec.name}")[:120]


def record_episode(
    env: CanonicalEnv, policy: ScriptedPolicy, seed: int | None
) -> tuple[list[StepData], dict[str, np.ndarray], dict[str, Any]]:
    """Run one episode of ``policy`` (called on the env's raw observation, answering in the
    env's action units). Returns (steps, final observation, summary)."""
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "__self__") and hasattr(policy.__self__, "reset"):
        policy.__self__.reset()
    steps: list[StepData] = []
    terminated = truncated = success = False
    while not (terminated or truncated):
        action = env.unscale(np.asarray(policy(env.raw_obs), np.float64))
        next_obs, reward, terminated, truncated, info = env.step(action)
        success = success or bool(info["success"])
        steps.append(
            step_data(obs, action, reward, info=info, terminated=terminated,
                       truncated=truncated, t=len(steps))
        )  # fmt: skip
        obs = next_obs
    return steps, obs, {"success": success, "terminated": terminated, "truncated": truncated}


def step_data(
    obs: dict[str, np.ndarray],
    action: np.ndarray,
    reward: float,
    *,
    info: dict[str, Any],
    terminated: bool,
    truncated: bool,
    t: int,
) -> StepData:
    """One step of a recorded episode: the action zero-padded to the format's 7 dims."""
    if action.shape[0] > ACTION_DIM:
        raise DemoError(
            f"actions of {action.shape[0]} dims exceed the episode format's {ACTION_DIM}"
        )
    padded = np.zeros(ACTION_DIM, np.float32)
    padded[: action.shape[0]] = action
    images = {k: v for k, v in obs.items() if k != "state"}
    return StepData(
        state=obs["state"], action=padded, images=images, policy_action=padded.copy(),
        reward=float(reward), success=bool(info["success"]), terminated=terminated,
        truncated=truncated, action_source=ActionSource.POLICY, mode=ControlMode.ROLLOUT, step=t,
    )  # fmt: skip


def write_demo(
    root: Path, env: CanonicalEnv, env_spec: EnvSpec, steps: list[StepData], *,
    final_obs: dict[str, np.ndarray], summary: dict[str, Any], policy_name: str,
) -> Path:  # fmt: skip
    """Write one successful episode as a complete ``demo`` episode under ``root``."""
    return write_episode(
        root, env_spec, steps, final_obs=final_obs, kind=EpisodeKind.DEMO, name="demo",
        extra={"action_dim": env.action_dim, "policy": policy_name,
               "recorder": "tandem record-demos"},
        success=True, terminated=summary["terminated"], truncated=summary["truncated"],
    )  # fmt: skip


def write_episode(
    root: Path, env_spec: EnvSpec, steps: list[StepData], *, final_obs: dict[str, np.ndarray],
    kind: EpisodeKind, name: str, extra: dict[str, Any], success: bool, terminated: bool,
    truncated: bool,
) -> Path:  # fmt: skip
    """Write one complete episode of any kind and outcome under ``root`` (cameras and image
    shape from ``final_obs``; episode id ``NAME-<hex>``)."""
    cams = [k for k in final_obs if k != "state"]
    shape = list(final_obs[cams[0]].shape) if cams else None
    meta = EpisodeMeta(
        robot_id=robot_id_for(env_spec), episode_id=f"{name}-{uuid.uuid4().hex[:12]}",
        kind=kind, cameras=cams, image_shape=shape,
        state_dim=int(final_obs["state"].shape[0]), task=str(env_spec), extra=extra,
    )  # fmt: skip
    writer = EpisodeWriter(root, meta, flush_every_s=float("inf"))
    for step in steps:
        writer.append(step)
    return writer.finish(
        final_obs=final_obs, outcome=Outcome.SUCCESS if success else Outcome.FAILURE,
        success=success, terminated=terminated, truncated=truncated,
        end_reason="success" if success else "time_limit",
    )  # fmt: skip


HDF5_SUFFIXES = (".hdf5", ".h5")


def load_demos(
    root: str | Path, *, action_dim: int, cameras: tuple[str, ...] = ()
) -> list[Segment]:
    """Successful complete episodes under ``root`` as replay-ready ``Segment``s (one per
    episode; cameras loaded when asked).

    ``root`` is an episode-store directory, or an HDF5 file in the robomimic
    layout that ``tandem export`` writes.
    """
    if Path(root).suffix in HDF5_SUFFIXES:
        return load_hdf5_demos(root, action_dim=action_dim, cameras=cameras)
    demos = []
    for path in list_episodes(root):
        episode = load_episode(path, images=bool(cameras))
        meta = episode.meta
        if not (meta.complete and meta.success) or len(episode) == 0:
            log.info("skipping %s (complete=%s success=%s)", path, meta.complete, meta.success)
            continue
        demos += _demo_segments(episode, action_dim, cameras)
    if not demos:
        raise DemoError(f"no complete successful episodes under {root}")
    log.info("loaded %d demos (%d steps) from %s", len(demos), sum(len(d) for d in demos), root)
    return demos


def _demo_segments(episode: Episode, action_dim: int, cameras: tuple[str, ...]) -> list[Segment]:
    """The transitions of one stored demo, actions cut to the env's ``action_dim``."""
    stored = int(episode.meta.extra.get("action_dim", ACTION_DIM))
    if stored != action_dim:
        raise DemoError(f"{episode.path}: actions have {stored} dims, the env has {action_dim}")
    missing = [c for c in cameras if c not in episode.images]
    if missing:
        raise DemoError(f"{episode.path}: no images for cameras {missing}")
    arrays = EpisodeArrays.from_stored(episode)
    arrays.images = {c: arrays.images[c] for c in cameras}
    final = arrays.final
    if final is not None and not all(c in final.images for c in cameras):
        arrays.final = None  # without every camera the final observation is unusable
    segments = arrays.segments()
    for seg in segments:
        seg.actions = seg.actions[:, :action_dim]
    return segments


def load_hdf5_demos(
    path: str | Path, *, action_dim: int, cameras: tuple[str, ...] = ()
) -> list[Segment]:
    """Successful demos of an HDF5 export (``data/demo_N/{obs, next_obs, actions, ...}``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            groups = sorted(f["data"].values(), key=lambda g: int(g.name.rsplit("_", 1)[-1]))
            demos = [_hdf5_demo(g, action_dim, cameras) for g in groups if g.attrs["success"]]
    except (OSError, KeyError, ValueError) as exc:
        raise DemoError(f"{path}: not a readable Tandem/robomimic HDF5 export: {exc}") from None
    if not demos:
        raise DemoError(f"no successful demos in {path}")
    log.info("loaded %d demos from %s", len(demos), path)
    return demos


def _hdf5_demo(group: Any, action_dim: int, cameras: tuple[str, ...]) -> Segment:
    obs, next_obs = group["obs"], group["next_obs"]
    actions = group["actions"][:]
    if np.abs(actions[:, action_dim:]).max(initial=0.0) > 0:
        raise DemoError(f"{group.name}: actions have more than {action_dim} used dims")
    missing = [c for c in cameras if f"{c}_image" not in obs]
    if missing:
        raise DemoError(f"{group.name}: no images for cameras {missing}")

    def with_final(key: str) -> np.ndarray:
        return np.concatenate([obs[key][:], next_obs[key][-1:]])

    n = len(actions)
    return Segment(
        robot_id="hdf5", episode_id=group.name.rsplit("/", 1)[-1], kind=EpisodeKind.DEMO,
        states=with_final("state").astype(np.float32),
        images={c: with_final(f"{c}_image") for c in cameras},
        actions=actions[:, :action_dim].astype(np.float32),
        rewards=group["rewards"][:].astype(np.float32), intervention=np.zeros(n, bool),
        seqs=np.full(n, -1, np.int64), steps=np.arange(n, dtype=np.int32),
        terminated=bool(group["terminated"][-1]),
    )  # fmt: skip
