"""Gymnasium ids of the simulated tasks, registered on ``import tandem``.

Registration is lazy: the entry point is a string, so the simulator (and MuJoCo
with it) is imported only when an environment is made. After ``import tandem``,
``gymnasium.make("tandem/Lift-v0")`` works in any interpreter; Gymnasium 1.x no
longer loads plugins through entry points, so the import is the hook.
"""

from __future__ import annotations

GYM_IDS: dict[str, str] = {"lift": "tandem/Lift-v0", "drawer": "tandem/Drawer-v0"}
ENTRY_POINT = "robot_bridge.sim:make_env"


def register() -> None:
    """Register every task id that is not registered yet (no-op without Gymnasium)."""
    try:
        import gymnasium
    except ImportError:  # an arm-only install has no use for the ids
        return
    for task, env_id in GYM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"task": task})
