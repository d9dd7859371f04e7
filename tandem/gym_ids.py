"""Gymnasium ids of the simulated tasks, registered once Gymnasium and Tandem are imported.

``import tandem`` registers the ids if Gymnasium is already imported, and otherwise
arranges for them to be registered the moment it is (a post-import hook on
``sys.meta_path``), so that ``import tandem`` itself never loads Gymnasium and the
order of the two imports does not matter. The entry point is a string: the simulator,
and MuJoCo with it, is imported only when an environment is made. (Gymnasium 1.x no
longer loads plugins through package entry points, so the import is the hook.)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

GYM_IDS: dict[str, str] = {
    "lift": "tandem/Lift-v0",
    "drawer": "tandem/Drawer-v0",
    "detour": "tandem/Detour-v0",
}
ENTRY_POINT = "sim:make_env"


def register() -> None:
    """Register every task id that is not registered yet (no-op without Gymnasium)."""
    try:
        import gymnasium
    except ImportError:  # an arm-only install has no use for the ids
        return
    for task, env_id in GYM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"task": task})


def register_now_or_on_import() -> None:
    """Register if Gymnasium is loaded, else once it is (see the module docstring)."""
    if "gymnasium" in sys.modules:
        register()
    elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterGymnasium())


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    """Finds ``gymnasium`` with the other finders and registers the ids after it loads."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        register()
